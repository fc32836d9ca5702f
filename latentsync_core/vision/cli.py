"""``latentsync faces VIDEO``: the face tracks of a video (the ids ``--face track:<id>``
takes), as a table, JSON, thumbnails and a contact sheet.

``add_parser(subparsers, settings)`` registers the command; ``run(args, settings)`` returns the
exit status: 0 done, 2 could not run (``error [CODE]: sentence`` on stderr). Options left out
take the deployment's settings: ``LATENTSYNC_WEIGHTS`` (demo: the dlib detector, as the service's
face scans), ``_CHECKPOINT_DIR``, ``_DETECT_WORKERS``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from latentsync_core.common.cli_exit import EXIT_OK, fail, run_standalone
from latentsync_core.common.cli_settings import CommandSettings, read_settings
from latentsync_core.common.errors import CodedError


def add_parser(
    subparsers: argparse._SubParsersAction, settings: Callable[[], CommandSettings] = read_settings
) -> argparse.ArgumentParser:
    """Register ``faces`` on a ``latentsync`` sub-command parser."""
    p = subparsers.add_parser(
        "faces",
        help="list the face tracks of a video (ids for --face track:<id>)",
        description="Detect every face, cut at shot changes, link faces into tracks; print one line per "
        "track and optionally write JSON, JPEG thumbnails and a contact sheet.",
    )
    p.add_argument("video")
    p.add_argument("--json", help="write the tracks as JSON here")
    p.add_argument("--per-frame", action="store_true", help="with --json: also every frame's box and landmarks")
    p.add_argument("--contact-sheet", help="write a PNG of every track's thumbnail here")
    p.add_argument("--thumbnails", help="write track_<id>.jpg thumbnails into this folder")
    p.add_argument(
        "--weights", choices=("official", "demo"), help="demo: the dlib detector (default: $LATENTSYNC_WEIGHTS)"
    )
    p.add_argument(
        "--checkpoint-dir",
        help="InsightFace is used if auxiliary/ has its models (default: $LATENTSYNC_CHECKPOINT_DIR)",
    )
    p.add_argument(
        "--workers", type=int, help="detection threads (default: $LATENTSYNC_DETECT_WORKERS; 0: all cores but one)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=lambda args: run(args, settings))
    return p


def run(args: argparse.Namespace, settings: Callable[[], CommandSettings] = read_settings) -> int:
    from tqdm import tqdm

    from latentsync_core.media.probe import probe_video
    from latentsync_core.vision.face_detection import make_face_detector
    from latentsync_core.vision.face_sheet import add_thumbnails, contact_sheet, write_thumbnails
    from latentsync_core.vision.face_tracks import track_faces

    logging.getLogger("latentsync_core").setLevel(logging.WARNING)
    try:
        s = settings()
    except CodedError as exc:
        return fail(exc.code, exc.message)
    weights = args.weights or s.weights
    auxiliary = Path(args.checkpoint_dir or s.checkpoint_dir) / "auxiliary" if weights == "official" else None
    workers = (s.detect_workers if args.workers is None else args.workers) or None
    bar = None if args.no_progress else tqdm(desc="   faces", unit="frame")

    def progress(done: int, total: int) -> None:
        assert bar is not None
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        info = probe_video(args.video)
        detector = make_face_detector(auxiliary)
        tracks = track_faces(args.video, detector, info, workers, progress=progress if bar is not None else None)
        if args.contact_sheet or args.thumbnails or args.json:
            add_thumbnails(args.video, tracks)
    except CodedError as exc:
        return fail(exc.code, exc.message)
    finally:
        if bar is not None:
            bar.close()
    print(f"{len(tracks.tracks)} face tracks in {tracks.frames} frames, {len(tracks.shots)} shots ({tracks.detector})")
    for t in tracks.tracks:
        w, h = t.size
        span = f"{t.first / tracks.fps:6.2f}-{(t.last + 1) / tracks.fps:6.2f} s"
        print(f"  track {t.id:3d}  shot {t.shot:2d}  {span}  {t.detections:5d} detections  size {w:.0f}x{h:.0f}")
    if args.thumbnails:
        paths = write_thumbnails(tracks, args.thumbnails)
        print(f"wrote {len(paths)} thumbnails to {args.thumbnails}")
    if args.json:
        data = tracks.to_json(include_frames=args.per_frame)
        if args.thumbnails:
            for entry in data["tracks"]:
                entry["thumbnail"] = f"track_{entry['id']}.jpg"
        Path(args.json).write_text(json.dumps(data, indent=2))
        print(f"wrote {args.json}")
    if args.contact_sheet:
        print(f"wrote {contact_sheet(tracks, args.contact_sheet)}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry: ``python -m latentsync_core.vision.cli faces VIDEO ...``."""
    return run_standalone(add_parser, argv)


if __name__ == "__main__":
    sys.exit(main())
