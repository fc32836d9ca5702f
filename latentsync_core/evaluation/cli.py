"""``latentsync eval run|report|syncnet-acc``.

``add_parser(subparsers)`` registers the ``eval`` group (``func`` returns the exit status:
0 done, 2 could not run, 130 interrupted; failures print ``error [CODE]: sentence``).
The shared weights follow the service's environment: ``LATENTSYNC_WEIGHTS`` (official or
demo), ``LATENTSYNC_CHECKPOINT_DIR`` and ``LATENTSYNC_DATA_DIR`` (the demo weights' cache),
each overridable by an option.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from latentsync_core.common.cli_exit import EXIT_INTERRUPTED, EXIT_OK, fail, run_standalone
from latentsync_core.common.errors import CodedError
from latentsync_core.configs.loader import CONFIG_DIR, ConfigError
from latentsync_core.configs.syncnet import DEFAULT_SYNCNET_CONFIG
from latentsync_core.inference.params import PARAM_BOUNDS, LipSyncParams
from latentsync_core.weights.official import MissingWeightsError


def _env(name: str, default: str) -> str:
    return os.environ.get(f"LATENTSYNC_{name}", default)


def _bounded(name: str, cast: type) -> object:
    lo, hi = PARAM_BOUNDS[name]

    def parse(text: str) -> object:
        value = cast(text)
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be between {lo} and {hi}")
        return value

    return parse


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("eval", help="evaluate UNets on a test set: sync, FVD, quality; compare them")
    sub = p.add_subparsers(dest="eval_command", required=True)
    r = sub.add_parser(
        "run",
        help="generate a test set with each UNet and score every output (resumable)",
        description="Each --unet lip-syncs every test of LIST with the same seed, steps and guidance; every output "
        "is scored (LSE-C, LSE-D, offset, FVD, visual quality, face coverage) into DIR/results.sqlite. "
        "Rerun the same command to continue a stopped run.",
    )
    r.add_argument("--test-set", required=True, help="one test per line: VIDEO<TAB>SPEECH, or VIDEO (its own audio)")
    r.add_argument(
        "--unet",
        action="append",
        required=True,
        metavar="[NAME=]PATH|demo",
        help="a UNet checkpoint to evaluate (repeat to compare); 'demo' is the demo UNet",
    )
    r.add_argument("--output", required=True, help="results folder DIR")
    r.add_argument("--steps", type=_bounded("inference_steps", int), default=LipSyncParams.inference_steps)
    r.add_argument("--guidance", type=_bounded("guidance_scale", float), default=LipSyncParams.guidance_scale)
    r.add_argument("--seed", type=_bounded("seed", int), default=LipSyncParams.seed)
    r.add_argument("--deepcache", action="store_true", help="DeepCache on (upstream's evaluation runs use it)")
    r.add_argument("--i3d", help="I3D TorchScript file (default: CHECKPOINT_DIR/auxiliary/i3d_torchscript.pt)")
    r.add_argument("--no-fvd", action="store_true", help="skip FVD (no I3D network needed)")
    _add_weights_options(r)
    r.add_argument(
        "--unet-config",
        default=str(CONFIG_DIR / "unet" / "stage2_512.yaml"),
        help="UNet config of official checkpoints",
    )
    r.add_argument("--dtype", choices=("auto", "float32", "float16", "bfloat16"), default="auto")
    r.add_argument("--detect-workers", type=int, default=None, help="face-detection threads (default: cores - 1)")
    r.add_argument("--report", action="store_true", help="write the report when the run is done")
    r.set_defaults(func=cmd_run)
    rep = sub.add_parser("report", help="tables, JSON, CSV and PNG of DIR's results; paired model comparisons")
    rep.add_argument("dir", help="results folder of `eval run`")
    rep.set_defaults(func=cmd_report)
    a = sub.add_parser("syncnet-acc", help="StableSyncNet accuracy on in-sync vs shifted windows")
    a.add_argument("--fileslist", required=True, help="clips of `latentsync preprocess` (e.g. fileslist_val.txt)")
    a.add_argument("--syncnet", required=True, help="StableSyncNet checkpoint (stable_syncnet.pt or a training one)")
    a.add_argument("--config", default=str(DEFAULT_SYNCNET_CONFIG), help="configs/syncnet/*.yaml of that SyncNet")
    a.add_argument("--samples", type=int, default=None, help="windows to test (default: the config's num_val_samples)")
    a.add_argument("--seed", type=int, default=1247, help="which windows (the same seed, the same windows)")
    a.add_argument("--batch-size", type=int, default=16)
    a.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    a.add_argument("--json", help="write the result as JSON here")
    a.add_argument("--no-progress", action="store_true")
    a.set_defaults(func=cmd_syncnet_acc)
    return p


def _add_weights_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--weights",
        choices=("official", "demo"),
        default=_env("WEIGHTS", "official"),
        help="the VAE, Whisper, detector and SyncNet: official files or demo (default: $LATENTSYNC_WEIGHTS)",
    )
    p.add_argument("--checkpoint-dir", default=_env("CHECKPOINT_DIR", "checkpoints"))
    p.add_argument("--cache-dir", default=str(Path(_env("DATA_DIR", "data")) / "cache"), help="demo weights' cache")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when available)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def cmd_run(args: argparse.Namespace) -> int:
    from latentsync_core.evaluation.generate import GenerationOptions, parse_unet_specs
    from latentsync_core.evaluation.report import write_report
    from latentsync_core.evaluation.runner import RunOptions, run_eval

    try:
        options = RunOptions(
            test_set=Path(args.test_set),
            unets=parse_unet_specs(args.unet),
            output=Path(args.output),
            generation=GenerationOptions(
                weights=args.weights,
                checkpoint_dir=Path(args.checkpoint_dir),
                cache_dir=Path(args.cache_dir),
                unet_config=Path(args.unet_config),
                device=args.device,
                dtype=None if args.dtype == "auto" else args.dtype,
                detect_workers=args.detect_workers,
            ),
            params=LipSyncParams(
                inference_steps=args.steps,
                guidance_scale=args.guidance,
                seed=args.seed,
                enable_deepcache=args.deepcache,
            ),
            i3d=Path(args.i3d) if args.i3d else None,
            fvd=not args.no_fvd,
            progress=not args.no_progress,
        )
        summary = run_eval(options)
        print(
            f"{summary.generated} generated, {summary.scored} scored, {summary.kept} kept from before, "
            f"{summary.failed} failed, {summary.sources} source videos scored; results in "
            f"{options.output / 'results.sqlite'}"
        )
        if args.report:
            paths = write_report(options.output)
            print(paths["txt"].read_text(), end="")
    except MissingWeightsError as exc:
        return fail("MISSING_WEIGHTS", str(exc))
    except ConfigError as exc:
        return fail("CONFIG_INVALID", str(exc))
    except CodedError as exc:
        return fail(exc.code, exc.message)
    except KeyboardInterrupt:
        return fail("INTERRUPTED", "stopped; rerun the same command to continue", EXIT_INTERRUPTED)
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from latentsync_core.evaluation.report import write_report

    try:
        paths = write_report(args.dir)
    except CodedError as exc:
        return fail(exc.code, exc.message)
    print(paths["txt"].read_text(), end="")
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return EXIT_OK


def cmd_syncnet_acc(args: argparse.Namespace) -> int:
    from latentsync_core.evaluation.syncnet_acc import syncnet_accuracy

    try:
        result = syncnet_accuracy(
            args.fileslist,
            args.syncnet,
            args.config,
            args.samples,
            args.seed,
            args.batch_size,
            device=args.device,
            progress=not args.no_progress,
        )
    except ConfigError as exc:
        return fail("CONFIG_INVALID", str(exc))
    except CodedError as exc:
        return fail(exc.code, exc.message)
    data = result.to_json()
    print(
        f"SyncNet accuracy {100 * data['accuracy']:.2f} % over {data['samples']} windows "
        f"(in sync {100 * data['in_sync_accuracy']:.2f} %, shifted {100 * data['shifted_accuracy']:.2f} %)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=2))
        print(f"wrote {args.json}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry: ``python -m latentsync_core.evaluation.cli eval run|report|syncnet-acc``."""
    return run_standalone(add_parser, argv)


if __name__ == "__main__":
    sys.exit(main())
