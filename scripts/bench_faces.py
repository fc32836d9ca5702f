"""What choosing the face costs (issue 26): tracking every face and ``face=speaker``, against
a plain lip-sync job of the same video, with demo weights on the CPU (or ``--device``).

The input is the issue's two-person clip: the bundled talking head scaled to 540x960 beside
a mirrored copy of itself two seconds later (1080x960), with the left one's audio. Timed:

- ``detect_largest``: a plain job's pass, the largest face of every frame (``detect``, short
  side at 480 px);
- ``detect_all@480``: every face at that size (what tracking used before: it misses these faces);
- ``track``: every face of every frame (``detect_all``, short side at 960 px), shot detection
  and linking (``track_faces``);
- ``speaker``: the SyncNetV2 confidence of every track against the video's audio
  (``speaker_confidences``; full-size SyncNetV2 with random demo weights: the real cost);
- ``job_*``: whole jobs (demo UNet, ``--steps``) with ``face`` unset, ``largest`` and
  ``speaker``, with their stage timings.

Each row gives wall and CPU seconds of this process (all its threads, not ffmpeg's; on a
shared machine the CPU time says more), each relative to the plain job. A table is printed;
``--json`` writes every number.

    .venv/bin/python -m scripts.bench_faces --seconds 4 --json bench_faces.json
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
from latentsync_core.vision.face_detection import DlibFaceDetector, detect_in_order, make_face_detector
from latentsync_core.vision.face_tracks import track_faces
from scripts.bench_table import print_table

ROOT = Path(__file__).resolve().parent.parent
VIDEO = ROOT / "assets" / "demo1_video.mp4"
AUDIO = ROOT / "assets" / "demo1_audio.wav"
T = TypeVar("T")


def make_two_people(dst: Path, seconds: float, width: int, height: int) -> Path:
    """The clip at ``width`` x ``height`` beside a mirrored copy 2 s later, the left one's audio."""
    part = f"fps=25,trim=start={{}}:duration={seconds},setpts=PTS-STARTPTS,scale={width}:{height}"
    graph = (
        f"[0:v]split[a][b];[a]{part.format(1)}[l];[b]{part.format(3)},hflip[r];"
        f"[l][r]hstack=inputs=2[v];[0:a]atrim=start=1:duration={seconds},asetpts=PTS-STARTPTS[s]"
    )
    args = ["-i", input_arg(VIDEO), "-filter_complex", graph, "-map", "[v]", "-map", "[s]", "-c:v", "libx264"]
    run_ffmpeg([*args, "-crf", "18", "-pix_fmt", "yuv420p", "-c:a", "aac", str(dst)])
    return dst


class Timer:
    """Wall and CPU seconds of each measurement, by name."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def __call__(self, name: str, fn: Callable[[], T]) -> T:
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        self.wall[name] = round(time.perf_counter() - t0, 2)
        self.cpu[name] = round(time.process_time() - c0, 2)
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--person", default="540x960", help="size of each person's picture, WxH")
    ap.add_argument("--steps", type=int, default=20, help="denoising steps of the jobs")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=1, help="face detection threads")
    ap.add_argument("--json")
    args = ap.parse_args()
    w, h = (int(v) for v in args.person.split("x"))
    folder = Path(tempfile.mkdtemp(prefix="bench-faces-"))
    video = make_two_people(folder / "two.mp4", args.seconds, w, h)
    speech = folder / "speech.wav"
    run_ffmpeg(["-ss", "2", "-t", str(args.seconds), "-i", input_arg(AUDIO), str(speech)])
    info = probe_video(video)
    detector = make_face_detector(None, args.device)
    timer = Timer()
    out: dict = {
        "machine": f"{platform.node()} {os.cpu_count()} cores, {platform.processor() or platform.machine()}",
        "device": args.device,
        "torch_threads": torch.get_num_threads(),
        "video": f"{info.width}x{info.height}",
        "seconds": args.seconds,
        "detector": detector.name,
        "workers": args.workers,
    }

    def per_frame(detect: Callable) -> list:
        with FrameReader(video, info.width, info.height) as reader:
            return [detect(frame) for frame in reader]

    def largest_pass() -> list:
        with FrameReader(video, info.width, info.height) as reader:
            return [face for _, face in detect_in_order(detector, reader, args.workers)]

    largest = timer("detect_largest", largest_pass)
    out["frames"] = len(largest)
    out["frames_with_a_face@480"] = sum(f is not None for f in largest)
    if isinstance(detector, DlibFaceDetector):
        small = DlibFaceDetector(all_faces_size=detector.detect_size)
        found = timer("detect_all@480", lambda: per_frame(small.detect_all))
        out["faces_per_frame@480"] = round(sum(map(len, found)) / len(found), 2)
    tracks = timer("track", lambda: track_faces(video, detector, info, args.workers))
    out["tracks"] = len(tracks.tracks)
    out["track_detections"] = [t.detections for t in tracks.tracks]
    syncnet, _ = load_syncnet_v2(Path("/nonexistent"), "demo", args.device)
    pcm = to_int16(load_audio(video))
    scorer = SyncNetSpeakerScorer(syncnet)
    conf = timer("speaker", lambda: speaker_confidences(video, tracks, pcm, scorer))
    out["speaker_confidence"] = {str(k): round(v, 3) for k, v in conf.items()}

    models = load_models("demo", folder / "no-checkpoints", folder / "cache", device=args.device)
    pipeline = LipSyncPipeline(models, detect_workers=args.workers)
    pipeline.speaker_scorer = scorer
    pipeline.run(video, speech, folder / "warm.mp4", LipSyncParams(inference_steps=1))  # first-call costs
    for face in (None, "largest", "speaker"):
        params = LipSyncParams(inference_steps=args.steps, face=face)
        key = f"job_{face or 'plain'}"
        result = timer(key, lambda p=params: pipeline.run(video, speech, folder / "o.mp4", p))
        out[key] = {k: round(v, 2) for k, v in result.timings.items()}
        if result.face:
            out[key]["shots"] = result.face["shots"]
    out["wall_s"], out["cpu_s"] = timer.wall, timer.cpu
    job, job_cpu = timer.wall["job_plain"], timer.cpu["job_plain"]
    out["relative_to_plain_job"] = {k: round(v / job, 3) for k, v in timer.wall.items()}
    out["cpu_relative_to_plain_job"] = {k: round(v / job_cpu, 3) for k, v in timer.cpu.items()}
    rows = [
        (
            name,
            f"{timer.wall[name]:7.2f} s wall ({timer.wall[name] / job:5.3f} x job) "
            f"{timer.cpu[name]:7.2f} s CPU ({timer.cpu[name] / job_cpu:5.3f} x job)",
        )
        for name in timer.wall
    ]
    print_table(rows, first=f"{out['video']} {args.seconds:g} s, {args.device}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
