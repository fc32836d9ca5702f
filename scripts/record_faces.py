"""Record the faces the real detector finds in a video (every frame at 25 fps), for
``scripts/bench_e2e.py --landmarks`` on a machine without the detector's model.

    python -m scripts.record_faces [--video assets/demo1_video.mp4] [--out scripts/data/demo1_faces.npz]

Uses the detector the pipeline would pick here (``make_face_detector``: InsightFace when
its weights are under ``--auxiliary``, else the embedded dlib one).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from latentsync_core.media.probe import probe_video
from latentsync_core.media.video_io import FrameReader
from latentsync_core.vision.face_detection import default_detect_workers, make_face_detector
from latentsync_core.vision.recorded_faces import record_faces

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, default=ROOT / "assets" / "demo1_video.mp4")
    ap.add_argument("--out", type=Path, default=ROOT / "scripts" / "data" / "demo1_faces.npz")
    ap.add_argument("--auxiliary", type=Path, default=None, help="folder with InsightFace's models, if any")
    ap.add_argument("--workers", type=int, default=default_detect_workers())
    args = ap.parse_args()
    info = probe_video(args.video)
    detector = make_face_detector(args.auxiliary)
    t0 = time.perf_counter()
    with FrameReader(args.video, info.width, info.height) as reader:
        recording = record_faces(detector, reader, args.workers)
    seconds = time.perf_counter() - t0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    recording.save(args.out)
    found = int((~np.isnan(recording.boxes[:, 0])).sum())
    kib = args.out.stat().st_size / 1024
    print(
        f"{recording.frame_count} frames ({found} with a face) by {recording.detector} in {seconds:.1f} s "
        f"on {args.workers} threads -> {args.out} ({kib:.0f} KiB)"
    )


if __name__ == "__main__":
    main()
