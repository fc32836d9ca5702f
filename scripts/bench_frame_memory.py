"""Peak host memory of one job against its frame size (issue 22 item 5: big frames).

Each measurement runs in a fresh child process: demo weights on the CPU, a warm-up job on
a small clip, then the bundled clip scaled to WxH for S seconds. It prints the growth of
the child's peak resident memory (``VmHWM``) over its resident memory before the big job,
beside the raw size of one frame, the same growth for the small warm-up job (what does not
depend on the frame size) and the bound on frames ``latentsync_core.inference.memory`` states.

    .venv/bin/python -m scripts.bench_frame_memory --sizes 720x1280 1440x2560 2160x3840 --seconds 1 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VIDEO = ROOT / "assets" / "demo1_video.mp4"
AUDIO = ROOT / "assets" / "demo1_audio.wav"


def make_inputs(folder: Path, width: int, height: int, seconds: float) -> tuple[Path, Path]:
    """The bundled clip scaled (and padded) to ``width`` x ``height``, and its speech."""
    from latentsync_core.media.ffmpeg_bin import input_arg, run_ffmpeg

    video, audio = folder / f"v{width}x{height}_{seconds:g}.mp4", folder / f"a{seconds:g}.wav"
    vf = f"scale={width}:{height}:force_original_aspect_ratio=decrease,pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,fps=25"
    args = ["-ss", "1", "-t", f"{seconds}", "-i", input_arg(VIDEO), "-vf", vf, "-an"]
    run_ffmpeg([*args, "-c:v", "libx264", "-preset", "ultrafast", "-crf", "20", "-pix_fmt", "yuv420p", str(video)])
    run_ffmpeg(["-ss", "1", "-t", f"{seconds}", "-i", input_arg(AUDIO), "-ac", "1", "-ar", "16000", str(audio)])
    return video, audio


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(video: Path, audio: Path, warm_video: Path, warm_audio: Path, cache: Path) -> dict:
    """In the child: load, warm up on the small clip, then measure the big job."""
    import torch

    from latentsync_core.inference import LipSyncParams, LipSyncPipeline
    from latentsync_core.models.loading import load_models

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory(prefix="bench-frame-mem-") as tmp:
        models = load_models("demo", Path(tmp) / "none", cache, device="cpu", dtype="float32")
        pipeline = LipSyncPipeline(models, detect_workers=1)
        params = LipSyncParams(inference_steps=1)
        pipeline.run(warm_video, warm_audio, Path(tmp) / "warm.mp4", params)
        before = _status_kib("VmRSS")
        warm_peak = _status_kib("VmHWM")  # the small job's working set: models' activations, not frames
        result = pipeline.run(video, audio, Path(tmp) / "out.mp4", params)
        peak = _status_kib("VmHWM")
    return {
        "width": result.width,
        "height": result.height,
        "frames": result.frames,
        "rss_before_kib": before,
        "peak_kib": peak,
        "growth_bytes": (peak - before) * 1024,
        "small_job_bytes": (warm_peak - before) * 1024,
    }


def measure(width: int, height: int, seconds: float, folder: Path, cache: Path) -> dict:
    """One measurement in a fresh interpreter (peaks of earlier runs must not count)."""
    video, audio = make_inputs(folder, width, height, seconds)
    warm_video, warm_audio = make_inputs(folder, 360, 640, 0.7)
    cmd = [sys.executable, "-m", "scripts.bench_frame_memory", "--child"]
    cmd += [str(video), str(audio), str(warm_video), str(warm_audio), str(cache)]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"measurement failed: {out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="+", default=["720x1280", "1440x2560", "2160x3840"])
    ap.add_argument("--seconds", nargs="+", type=float, default=[1.0, 2.0])
    ap.add_argument("--cache", default=str(ROOT / "data" / "cache"))
    ap.add_argument("--child", nargs=5, metavar="PATH", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*(Path(p) for p in args.child))))
        return
    from latentsync_core.inference.memory import FramePolicy

    header = ("size", "s", "frames", "frame MiB", "growth MiB", "small job", "frames bound")
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, (10, 4, 6, 9, 10, 9, 12), strict=True)))
    with tempfile.TemporaryDirectory(prefix="bench-frame-mem-") as tmp:
        for size in args.sizes:
            width, height = (int(v) for v in size.split("x"))
            for seconds in args.seconds:
                r = measure(width, height, seconds, Path(tmp), Path(args.cache))
                policy = FramePolicy.for_frames(width, height)
                bound = policy.bound_bytes(r["frames"])
                print(
                    f"{size:>10} {seconds:>4g} {r['frames']:>6} {width * height * 3 / 2**20:>9.1f}"
                    f" {r['growth_bytes'] / 2**20:>10.0f} {r['small_job_bytes'] / 2**20:>9.0f} {bound / 2**20:>12.0f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
