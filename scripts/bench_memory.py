"""Peak host memory of the pipeline on a long job (issue: bounded memory).

Loops the bundled 1080x1920 clip's speech to N minutes, runs the pipeline in demo mode
and prints the peak resident memory of this process and of its ffmpeg children. Memory
does not depend on the number of diffusion steps, so one step keeps the run short.

    .venv/bin/python -m scripts.bench_memory --minutes 5
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from latentsync_core.inference import LipSyncParams, LipSyncPipeline
from latentsync_core.inference.stages import ProgressEvent
from latentsync_core.media.ffmpeg_bin import input_arg, run_ffmpeg
from latentsync_core.models.loading import load_models

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--video", default=str(ROOT / "assets" / "demo1_video.mp4"))
    ap.add_argument("--audio", default=str(ROOT / "assets" / "demo1_audio.wav"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-mem-") as tmp:
        tmp_path = Path(tmp)
        audio = tmp_path / "long.wav"
        seconds = args.minutes * 60
        run_ffmpeg(["-stream_loop", "-1", "-i", input_arg(args.audio), "-t", f"{seconds}", str(audio)])
        models = load_models("demo", tmp_path / "none", ROOT / "data" / "cache", device="cpu")
        rss_after_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        last = [0.0]

        def progress(event: ProgressEvent) -> None:
            if time.time() - last[0] > 30:
                last[0] = time.time()
                rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                print(f"  {event.stage} {event.done}/{event.total}  peak RSS so far {rss:.0f} MiB", flush=True)

        t0 = time.time()
        result = LipSyncPipeline(models).run(
            args.video, audio, tmp_path / "out.mp4", LipSyncParams(inference_steps=args.steps), progress=progress
        )
        wall = time.time() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"audio {seconds:.0f} s -> {result.frames} frames at {result.width}x{result.height}, {wall:.0f} s wall")
    print(f"peak RSS: python {peak:.0f} MiB (after model load {rss_after_load:.0f} MiB)")
    print(f"peak RSS: largest ffmpeg child {children:.0f} MiB")
    print(f"timings: { {k: round(v, 1) for k, v in result.timings.items()} }")


if __name__ == "__main__":
    main()
