"""``latentsync sync-score``: offset, LSE-C and LSE-D of a video's main face against its
speech (SyncNetV2), printed, and optionally written as JSON and a PNG plot.

``add_parser(subparsers, settings)`` registers it; ``settings()`` gives the weights and
device to use (the service's ``Settings`` satisfies ``SyncScoreSettings``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from latentsync_core.common.cli_exit import EXIT_OK, fail


class SyncScoreSettings(Protocol):
    checkpoint_dir: Path
    weights: str  # "official" or "demo"
    device: str  # "auto", "cpu", "cuda", "cuda:N"
    detect_workers: int  # 0: all cores but one


def cmd_sync_score(args: argparse.Namespace, settings: SyncScoreSettings) -> int:
    import json

    from latentsync_core.common.errors import CodedError
    from latentsync_core.sync import load_syncnet_v2, score_video
    from latentsync_core.sync.plot import write_plot
    from latentsync_core.weights.official import MissingWeightsError

    s = settings
    device = None if s.device == "auto" else s.device
    try:
        syncnet, label = load_syncnet_v2(
            s.checkpoint_dir, "demo" if s.weights == "demo" else "official", device or "cpu"
        )
        report = score_video(args.video, args.audio, syncnet, device=device, detect_workers=s.detect_workers or None)
    except MissingWeightsError as exc:
        return fail("MISSING_WEIGHTS", str(exc))
    except CodedError as exc:
        return fail(exc.code, exc.message)
    print(f"offset  {report.offset_frames:+d} frames ({report.offset_ms:+.0f} ms; negative: the audio lags)")
    print(f"LSE-C   {report.lse_c:.3f}   (confidence, higher is better)")
    print(f"LSE-D   {report.lse_d:.3f}   (distance, lower is better)")
    print(f"scored  {report.frames_scored} frames from frame {report.first_frame}; weights: {label}")
    if label == "demo":
        print("NOTE: demo weights (random SyncNet): these numbers say nothing about lip sync")
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_json(), indent=2))
        print(f"wrote {args.json}")
    if args.plot:
        write_plot(report, args.plot)
        print(f"wrote {args.plot}")
    return EXIT_OK


def add_parser(subparsers: argparse._SubParsersAction, settings: Callable[[], SyncScoreSettings]) -> None:
    """Register ``sync-score`` on a ``latentsync`` sub-command parser."""
    p = subparsers.add_parser("sync-score", help="measure lip sync of a video: offset, LSE-C, LSE-D (SyncNetV2)")
    p.add_argument("video")
    p.add_argument("--audio", help="speech to score against (default: the video's own audio track)")
    p.add_argument("--json", help="write the scores as JSON here")
    p.add_argument("--plot", help="write a PNG of the confidence per second here")
    p.set_defaults(func=lambda args: cmd_sync_score(args, settings()))
