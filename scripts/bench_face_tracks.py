"""What choosing the face costs (issue 26): tracking every face and ``face=speaker``,
against a lip-sync job of the same video, with demo weights on the CPU (or ``--device``).

The input is the issue's two-person clip: the bundled talking head beside a mirrored copy
of itself two seconds later (a ``--side`` px square per person), with the left one's audio. Timed:

- ``detect_largest``: today's pass, the largest face of every frame (``detect_in_order``);
- ``track``: every face of every frame, shot detection and linking (``track_faces``);
- ``speaker``: the SyncNetV2 confidence of every track against the video's audio
  (``speaker_confidences``; full-size SyncNetV2 with random demo weights: the real cost);
- ``job_*``: whole jobs (demo UNet, ``--steps``) with ``face`` unset, ``largest`` and
  ``speaker``, with their stage timings.

Also counted: how often the per-frame largest face switches between the two people.

    .venv/bin/python -m scripts.bench_face_tracks --seconds 4 --json bench_face_tracks.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

from latentsync_core.inference import LipSyncParams, LipSyncPipeline
from latentsync_core.media.audio_io import load_audio, to_int16
from latentsync_core.media.ffmpeg_bin import input_arg, run_ffmpeg
from latentsync_core.media.probe import probe_video
from latentsync_core.media.video_io import FrameReader
from latentsync_core.models.loading import load_models
from latentsync_core.sync.speaker import SyncNetSpeakerScorer, speaker_confidences
from latentsync_core.sync.video import load_syncnet_v2
from latentsync_core.vision.face_detection import detect_in_order, make_face_detector
from latentsync_core.vision.face_tracks import track_faces

ROOT = Path(__file__).resolve().parent.parent
VIDEO = ROOT / "assets" / "demo1_video.mp4"
AUDIO = ROOT / "assets" / "demo1_audio.wav"
T = TypeVar("T")


def make_two_people(dst: Path, seconds: float, side: int) -> Path:
    """Squares of ``side`` px around the face (a 480 px crop of the 1080x1920 clip): the
    embedded detector works on a copy whose short side is 480 px, so whole portrait
    halves side by side (face ~5% of the height) would be too small for it."""
    crop = f"crop=480:480:350:520,scale={side}:{side}"
    graph = (
        f"[0:v]split[a][b];[a]fps=25,trim=start=1:duration={seconds},setpts=PTS-STARTPTS,{crop}[l];"
        f"[b]fps=25,trim=start=3:duration={seconds},setpts=PTS-STARTPTS,{crop},hflip[r];"
        f"[l][r]hstack=inputs=2[v];[0:a]atrim=start=1:duration={seconds},asetpts=PTS-STARTPTS[s]"
    )
    args = ["-i", input_arg(VIDEO), "-filter_complex", graph, "-map", "[v]", "-map", "[s]", "-c:v", "libx264"]
    run_ffmpeg([*args, "-crf", "18", "-pix_fmt", "yuv420p", "-c:a", "aac", str(dst)])
    return dst


CPU: dict[str, float] = {}  # CPU seconds of this process (all its threads; not ffmpeg's) per measurement


def timed(fn: Callable[[], T], name: str) -> tuple[T, float]:
    """``fn()`` and its wall seconds; its CPU seconds go to ``CPU[name]`` (on a shared
    machine the CPU time says more than the wall time)."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    CPU[name] = round(time.process_time() - c0, 2)
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--side", type=int, default=480, help="size of each person's square")
    ap.add_argument("--steps", type=int, default=20, help="denoising steps of the jobs")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=1, help="face detection threads")
    ap.add_argument("--json")
    args = ap.parse_args()
    w = args.side
    folder = Path(tempfile.mkdtemp(prefix="bench-faces-"))
    video = make_two_people(folder / "two.mp4", args.seconds, w)
    speech = folder / "speech.wav"
    run_ffmpeg(["-ss", "2", "-t", str(args.seconds), "-i", input_arg(AUDIO), str(speech)])
    info = probe_video(video)
    detector = make_face_detector(None, args.device)
    out: dict = {
        "machine": f"{platform.node()} {os.cpu_count()} cores",
        "device": args.device,
        "torch_threads": torch.get_num_threads(),
        "video": f"{info.width}x{info.height}",
        "seconds": args.seconds,
        "detector": detector.name,
        "workers": args.workers,
    }

    def largest_pass() -> list:
        with FrameReader(video, info.width, info.height) as reader:
            return [f for _, f in detect_in_order(detector, reader, args.workers)]

    faces, out["detect_largest_s"] = timed(largest_pass, "detect_largest")
    left = [f.box[0] < w for f in faces if f is not None]
    out["frames"] = len(faces)
    out["largest_switches"] = sum(a != b for a, b in zip(left, left[1:], strict=False))
    tracks, out["track_s"] = timed(lambda: track_faces(video, detector, info, args.workers), "track")
    out["tracks"] = len(tracks.tracks)
    syncnet, _ = load_syncnet_v2(Path("/nonexistent"), "demo", args.device)
    pcm = to_int16(load_audio(video))
    scorer = SyncNetSpeakerScorer(syncnet)
    conf, out["speaker_s"] = timed(lambda: speaker_confidences(video, tracks, pcm, scorer), "speaker")
    out["speaker_confidence"] = {str(k): round(v, 3) for k, v in conf.items()}

    models = load_models("demo", folder / "no-checkpoints", folder / "cache", device=args.device)
    pipeline = LipSyncPipeline(models, detect_workers=args.workers)
    pipeline.speaker_scorer = SyncNetSpeakerScorer(syncnet)
    pipeline.run(video, speech, folder / "warm.mp4", LipSyncParams(inference_steps=1))  # first-call costs
    for face in (None, "largest", "speaker"):
        params = LipSyncParams(inference_steps=args.steps, face=face)
        key = f"job_{face or 'default'}"
        result, seconds = timed(lambda p=params: pipeline.run(video, speech, folder / "o.mp4", p), key)
        out[key] = {"total_s": round(seconds, 2), **{k: round(v, 2) for k, v in result.timings.items()}}
        if result.face:
            out[key]["shots"] = result.face["shots"]
    for key in ("detect_largest_s", "track_s", "speaker_s"):
        out[key] = round(out[key], 2)
    job = out["job_default"]["total_s"]
    out["relative_to_default_job"] = {
        "track": round(out["track_s"] / job, 3),
        "speaker": round(out["speaker_s"] / job, 3),
        "job_largest": round(out["job_largest"]["total_s"] / job, 3),
        "job_speaker": round(out["job_speaker"]["total_s"] / job, 3),
    }
    out["cpu_s"] = CPU
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
