"""``latentsync download-weights``: fetch the official weights into the checkpoint folder
(``--dir``, else ``settings().checkpoint_dir``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from latentsync_core.common.cli_exit import EXIT_OK


class WeightsSettings(Protocol):
    checkpoint_dir: Path


def cmd_download(args: argparse.Namespace, settings: Callable[[], WeightsSettings]) -> int:
    import sys

    from latentsync_core.weights.official import download_official_weights

    root = Path(args.dir) if args.dir else settings().checkpoint_dir
    try:
        paths = download_official_weights(root)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"weights in {paths.unet.parent}")
    return EXIT_OK


def add_parser(subparsers: argparse._SubParsersAction, settings: Callable[[], WeightsSettings]) -> None:
    """Register ``download-weights`` on a ``latentsync`` sub-command parser."""
    p = subparsers.add_parser("download-weights", help="fetch the official weights (needs internet)")
    p.add_argument("--dir")
    p.set_defaults(func=lambda args: cmd_download(args, settings))
