"""Per-job disk footprint of a 1080p job (issue 16 item 8), measured, then extrapolated.

Runs the pipeline (demo weights, CPU, one step: disk use does not depend on the steps)
on ``--video-s`` seconds of the bundled 1080x1920 clip with ``--audio-s`` seconds of
speech, so the video loops and the frame store is used (the worst case), samples the
job's work folder every 50 ms, and prints its peak with the bytes per frame of each file.
The figure for a longer job is extrapolated per frame (every file grows linearly with
the frames: the frame store with source frames, moments and output with output frames).

    .venv/bin/python -m scripts.bench_disk_footprint --video-s 2 --audio-s 3 --target-s 60
"""

from __future__ import annotations

import argparse
import tempfile
import threading
from pathlib import Path

from latentsync_core.inference import LipSyncParams, LipSyncPipeline
from latentsync_core.media.constants import FPS
from latentsync_core.media.ffmpeg_bin import input_arg, run_ffmpeg
from latentsync_core.models.loading import load_models
from latentsync_core.storage.job_disk import estimate_job_disk

ROOT = Path(__file__).resolve().parent.parent


def _sizes(folder: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in folder.rglob("*"):
        try:
            if p.is_file():
                out[str(p.relative_to(folder))] = p.stat().st_size
        except OSError:  # removed while we looked
            pass
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--video-s", type=float, default=2.0)
    ap.add_argument("--audio-s", type=float, default=3.0)
    ap.add_argument("--target-s", type=float, default=60.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-disk-") as tmp:
        t = Path(tmp)
        video, audio, work = t / "v.mp4", t / "a.wav", t / "work"
        run_ffmpeg(["-t", f"{args.video_s}", "-i", input_arg(ROOT / "assets" / "demo1_video.mp4"), "-an",
                    "-c:v", "libx264", "-crf", "18", str(video)])  # fmt: skip
        run_ffmpeg(["-stream_loop", "-1", "-i", input_arg(ROOT / "assets" / "demo1_audio.wav"), "-t",
                    f"{args.audio_s}", str(audio)])  # fmt: skip
        models = load_models("demo", t / "none", ROOT / "data" / "cache", device="cpu")
        peak: dict[str, int] = {}
        peak_total = [0]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.05):
                sizes = _sizes(work)
                for k, v in sizes.items():
                    peak[k] = max(peak.get(k, 0), v)
                peak_total[0] = max(peak_total[0], sum(sizes.values()))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            result = LipSyncPipeline(models).run(
                video, audio, work / "result.mp4", LipSyncParams(inference_steps=1), work_dir=work / "tmp"
            )
        finally:
            stop.set()
            sampler.join()
        src, out = result.source_frames, result.frames
    print(f"{src} source frames looped to {out} output frames at {result.width}x{result.height}")
    print(f"peak work folder: {peak_total[0] / 2**20:.1f} MiB")
    for name, size in sorted(peak.items(), key=lambda kv: -kv[1]):
        per = src if name.startswith("tmp/frames.") else out
        print(f"  {name:32s} {size / 2**20:9.1f} MiB  {size / per / 2**20:7.3f} MiB per frame")
    frames = int(args.target_s * FPS)
    projected = sum(size / (src if n.startswith("tmp/frames.") else out) for n, size in peak.items()) * frames
    print(f"extrapolated, {args.target_s:.0f} s ({frames} frames, the video as long as the speech: worst case)"
          f" {projected / 2**30:.2f} GiB")  # fmt: skip
    worst = estimate_job_disk(result.width, result.height, args.target_s, args.target_s)
    print(f"admission estimate (worst case, job_disk.py) for {args.target_s:.0f} s: {worst.total / 2**30:.2f} GiB"
          f" ({', '.join(f'{k} {v / 2**30:.2f}' for k, v in worst.to_json().items())} GiB)")  # fmt: skip


if __name__ == "__main__":
    main()
