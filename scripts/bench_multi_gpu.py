"""Several GPUs of one host, measured with the library (no HTTP in the way):

1. throughput: two jobs one after the other on one GPU vs at once on two GPUs (aim 2x);
2. one long job (the bundled clip under ~60 s of speech: demo1_audio.wav six times over,
   the video played back and forth) on one GPU vs with its windows split over two (aim:
   under 0.55x the time).

    python scripts/bench_multi_gpu.py [--weights official|demo] [--steps 20] [--out DIR]

Needs two CUDA devices. Prints a JSON summary (also written to DIR/bench_multi_gpu.json).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import wave
from pathlib import Path

import torch

from latentsync_core.inference import LipSyncParams, PipelineOptions, build_pipeline

ROOT = Path(__file__).resolve().parent.parent


class OneHelper:
    """Lends the second GPU to the job for its whole run (what the service's pool does
    while no other job waits)."""

    def __init__(self, helper):
        self.helper, self.lent = helper, False

    def borrow(self):
        if self.lent:
            return []
        self.lent = True
        return [self.helper]

    def wanted_back(self, pipeline) -> bool:
        return False

    def give_back(self, pipeline) -> None:
        self.lent = False


def long_speech(out: Path, repeat: int = 6) -> Path:
    with wave.open(str(ROOT / "assets" / "demo1_audio.wav")) as src:
        params, pcm = src.getparams(), src.readframes(src.getnframes())
    with wave.open(str(out), "wb") as dst:
        dst.setparams(params)
        dst.writeframes(pcm * repeat)
    return out


def timed(fn) -> float:
    torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default="official", choices=["official", "demo"])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if torch.cuda.device_count() < 2:
        raise SystemExit("needs two CUDA devices")
    out = Path(args.out or tempfile.mkdtemp(prefix="bench-multi-gpu-"))
    out.mkdir(parents=True, exist_ok=True)
    base = PipelineOptions(weights=args.weights, checkpoint_dir=ROOT / "checkpoints", cache_dir=out / "cache",
                           compile=False, sync_score=False)  # fmt: skip
    gpus = [build_pipeline(PipelineOptions(**{**base.__dict__, "device": f"cuda:{i}", "gpu_id": i})) for i in (0, 1)]
    params = LipSyncParams(inference_steps=args.steps)
    video, audio = ROOT / "assets" / "demo1_video.mp4", ROOT / "assets" / "demo1_audio.wav"
    gpus[0].run(video, audio, out / "warm0.mp4", params)  # first-call costs out of the way
    gpus[1].run(video, audio, out / "warm1.mp4", params)

    one_gpu_two_jobs = timed(lambda: [gpus[0].run(video, audio, out / f"s{i}.mp4", params) for i in range(2)])

    def both() -> None:
        threads = [threading.Thread(target=g.run, args=(video, audio, out / f"p{i}.mp4", params))
                   for i, g in enumerate(gpus)]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    two_gpus_two_jobs = timed(both)
    speech = long_speech(out / "speech60.wav")
    long_one = timed(lambda: gpus[0].run(video, speech, out / "long1.mp4", params))
    long_two = timed(lambda: gpus[0].run(video, speech, out / "long2.mp4", params, lender=OneHelper(gpus[1])))
    summary = {
        "devices": [torch.cuda.get_device_name(i) for i in (0, 1)],
        "weights": args.weights,
        "steps": args.steps,
        "two_jobs_one_gpu_s": round(one_gpu_two_jobs, 2),
        "two_jobs_two_gpus_s": round(two_gpus_two_jobs, 2),
        "throughput_gain": round(one_gpu_two_jobs / two_gpus_two_jobs, 3),
        "long_job_one_gpu_s": round(long_one, 2),
        "long_job_two_gpus_s": round(long_two, 2),
        "long_job_ratio": round(long_two / long_one, 3),
    }
    (out / "bench_multi_gpu.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
