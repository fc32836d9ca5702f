"""``latentsync preprocess``: raw talking-head footage in, a training set out.

``add_parser(subparsers, settings)`` registers the command on the ``latentsync`` parser;
``run(args, settings)`` executes it and returns the exit status: 0 when the run finished
(whatever it rejected), 2 when it could not run, 3 when some items failed unexpectedly (a
rerun retries them), 130 when interrupted. Failures print ``error [CODE]: sentence`` on stderr.
``--weights`` and ``--checkpoint-dir`` left out take the deployment's settings
(``LATENTSYNC_WEIGHTS``, ``LATENTSYNC_CHECKPOINT_DIR``: environment, then ``.env``); a
``checkpoint_dir`` in the config file comes before the setting.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from latentsync_core.common.cli_exit import (
    EXIT_CANNOT_RUN,
    EXIT_INTERRUPTED,
    EXIT_ITEMS_FAILED,
    EXIT_OK,
    fail,
    run_standalone,
)
from latentsync_core.common.cli_settings import CommandSettings, read_settings
from latentsync_core.common.errors import CodedError
from latentsync_core.configs.loader import ConfigError

# flag -> config key (flags left unset keep the config file's value)
_FLAG_KEYS = {
    "resolution": "resolution",
    "sync_conf_threshold": "sync_conf_threshold",
    "max_offset": "max_offset",
    "segment_seconds": "segment_seconds",
    "min_segment_seconds": "min_segment_seconds",
    "workers": "workers",
    "gpus": "gpus",
    "engine": "engine",
    "ray_address": "ray_address",
    "quality_model": "quality_model",
    "val_fraction": "val_fraction",
}


def add_parser(
    subparsers: argparse._SubParsersAction, settings: Callable[[], CommandSettings] = read_settings
) -> argparse.ArgumentParser:
    """Register ``preprocess`` on a ``latentsync`` sub-command parser; ``settings()`` gives the
    weights and checkpoint folder when their flags are left out."""
    p = subparsers.add_parser(
        "preprocess",
        help="turn raw talking-head videos into a training set (7 stages)",
        description="Raw videos -> checked, 25 fps / 16 kHz, shot-split, segmented, face-aligned, "
        "sync-corrected, quality-filtered clips, with a manifest, file lists and a report. "
        "Resumable: rerun the same command after an interruption.",
    )
    p.add_argument("--input-dir", required=True, help="folder of raw videos (searched recursively)")
    p.add_argument("--output-dir", required=True, help="where clips/, manifest.sqlite, fileslists and reports go")
    p.add_argument("--config", default=None, help="YAML config (default: configs/data/preprocess.yaml)")
    p.add_argument("--resolution", type=int, choices=(256, 512))
    p.add_argument("--sync-conf-threshold", type=float, help="keep SyncNet confidence >= this (default 3)")
    p.add_argument("--max-offset", type=int, help="keep |audio-video offset| <= this many frames (default 6)")
    p.add_argument("--segment-seconds", type=float, help="segment length (default 5)")
    p.add_argument("--min-segment-seconds", type=float, help="shortest segment kept (default 2)")
    p.add_argument("--workers", type=int, help="CPU stage processes (default: one per core)")
    p.add_argument("--gpus", help="all | none | indices such as 0,1 (one device worker per GPU)")
    p.add_argument("--engine", choices=("local", "ray"))
    p.add_argument("--ray-address", help="Ray cluster address (engine ray)")
    p.add_argument("--quality-model", choices=("auto", "embedded", "hyperiqa"))
    p.add_argument("--val-fraction", type=float, help="share of source files for validation")
    p.add_argument("--keep-intermediate", action="store_true", default=None, help="keep work/ after the run")
    p.add_argument(
        "--weights",
        choices=("official", "demo"),
        help="SyncNetV2 from the checkpoint folder, or the demo one (random; default: $LATENTSYNC_WEIGHTS)",
    )
    p.add_argument("--checkpoint-dir", help="official weights, upstream's layout (default: $LATENTSYNC_CHECKPOINT_DIR)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any other config key")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=lambda args: run(args, settings))
    return p


@contextmanager
def _exported(values: dict[str, str]) -> Iterator[None]:
    """The stages read the weights and checkpoint folder from the environment, which their worker
    processes (local pools, Ray tasks) inherit; restored afterwards for in-process callers."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run(args: argparse.Namespace, settings: Callable[[], CommandSettings] = read_settings) -> int:
    from latentsync_core.data.config import DEFAULT_PREPROCESS_CONFIG, load_preprocess_config
    from latentsync_core.data.pipeline import run_preprocess
    from latentsync_core.data.report import format_report

    values = {key: getattr(args, flag, None) for flag, key in _FLAG_KEYS.items()}
    values["keep_intermediate"] = args.keep_intermediate
    values["checkpoint_dir"] = args.checkpoint_dir  # a flag is part of the run's config, as --set is
    try:
        s = settings()
        env = {"LATENTSYNC_WEIGHTS": args.weights or s.weights, "LATENTSYNC_CHECKPOINT_DIR": str(s.checkpoint_dir)}
        cfg = load_preprocess_config(args.config or DEFAULT_PREPROCESS_CONFIG, overrides=args.set, values=values)
        with _exported(env):
            summary = run_preprocess(args.input_dir, args.output_dir, cfg, progress=not args.no_progress)
    except ConfigError as exc:
        return fail("CONFIG_INVALID", str(exc))
    except CodedError as exc:
        return fail(exc.code, exc.message, EXIT_INTERRUPTED if exc.code == "INTERRUPTED" else EXIT_CANNOT_RUN)
    except KeyboardInterrupt:
        return fail("INTERRUPTED", "stopped; rerun the same command to resume", EXIT_INTERRUPTED)
    print(format_report(summary.report))
    layout = summary.layout
    assert layout is not None
    lists = f"lists {layout.train_list.name}, {layout.val_list.name}"
    reports = f"report {layout.report_json.name}, {layout.report_png.name}"
    print(f"clips in {layout.clips}; {lists}; manifest {layout.manifest.name}; {reports}")
    if summary.report["weights"] == "demo":
        print("NOTE: DEMO WEIGHTS (LATENTSYNC_WEIGHTS=demo): random SyncNet, sync decisions are meaningless")
    if summary.errors:
        first = summary.errors[0]
        return fail(
            "ITEMS_FAILED",
            f"{len(summary.errors)} item(s) failed unexpectedly (first: stage {first['stage']} of {first['item']}: "
            f"{first['error']}); rerun to retry them",
            EXIT_ITEMS_FAILED,
        )
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry (``python -m latentsync_core.data.cli preprocess ...``)."""
    return run_standalone(add_parser, argv)


if __name__ == "__main__":
    sys.exit(main())
