"""``latentsync eval run|report|syncnet-acc``.

``add_parser(subparsers, settings)`` registers the ``eval`` group (``func`` returns the exit
status: 0 done, 2 could not run, 130 interrupted; failures print ``error [CODE]: sentence``).
Each option left out takes the deployment's setting (environment, then ``.env``): the shared
weights ``LATENTSYNC_WEIGHTS`` (official or demo), ``_CHECKPOINT_DIR``, ``_DATA_DIR`` (the demo
weights' cache), ``_UNET_CONFIG``, ``_DEVICE``, ``_DTYPE``, ``_DETECT_WORKERS`` and the job
defaults ``_INFERENCE_STEPS``, ``_GUIDANCE_SCALE``, ``_SEED``, ``_ENABLE_DEEPCACHE``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from latentsync_core.common.cli_exit import EXIT_INTERRUPTED, EXIT_OK, fail, run_standalone
from latentsync_core.common.cli_settings import CommandSettings, device_or_none, read_settings
from latentsync_core.common.errors import CodedError
from latentsync_core.configs.loader import ConfigError
from latentsync_core.configs.syncnet import DEFAULT_SYNCNET_CONFIG
from latentsync_core.inference.params import PARAM_BOUNDS, LipSyncParams
from latentsync_core.weights.official import MissingWeightsError


def _bounded(name: str, cast: type) -> object:
    lo, hi = PARAM_BOUNDS[name]

    def parse(text: str) -> object:
        value = cast(text)
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be between {lo} and {hi}")
        return value

    return parse


def add_parser(
    subparsers: argparse._SubParsersAction, settings: Callable[[], CommandSettings] = read_settings
) -> argparse.ArgumentParser:
    """Register ``eval run|report|syncnet-acc``; ``settings()`` gives the options left out."""
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
    r.add_argument("--steps", type=_bounded("inference_steps", int), help="default: $LATENTSYNC_INFERENCE_STEPS")
    r.add_argument("--guidance", type=_bounded("guidance_scale", float), help="default: $LATENTSYNC_GUIDANCE_SCALE")
    r.add_argument("--seed", type=_bounded("seed", int), help="default: $LATENTSYNC_SEED")
    r.add_argument(
        "--deepcache",
        action=argparse.BooleanOptionalAction,
        help="DeepCache (upstream's evaluation runs use it; default: $LATENTSYNC_ENABLE_DEEPCACHE)",
    )
    r.add_argument("--i3d", help="I3D TorchScript file (default: CHECKPOINT_DIR/auxiliary/i3d_torchscript.pt)")
    r.add_argument("--no-fvd", action="store_true", help="skip FVD (no I3D network needed)")
    _add_weights_options(r)
    r.add_argument("--unet-config", help="UNet config of official checkpoints (default: $LATENTSYNC_UNET_CONFIG)")
    r.add_argument("--dtype", choices=("auto", "float32", "float16", "bfloat16"), help="default: $LATENTSYNC_DTYPE")
    r.add_argument(
        "--detect-workers", type=int, help="face-detection threads (default: $LATENTSYNC_DETECT_WORKERS; 0: cores - 1)"
    )
    r.add_argument("--report", action="store_true", help="write the report when the run is done")
    r.set_defaults(func=lambda args: cmd_run(args, settings))
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
    a.add_argument("--device", help="cpu or cuda (default: $LATENTSYNC_DEVICE; auto: cuda when available)")
    a.add_argument("--json", help="write the result as JSON here")
    a.add_argument("--no-progress", action="store_true")
    a.set_defaults(func=lambda args: cmd_syncnet_acc(args, settings))
    return p


def _add_weights_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--weights",
        choices=("official", "demo"),
        help="the VAE, Whisper, detector and SyncNet: official files or demo (default: $LATENTSYNC_WEIGHTS)",
    )
    p.add_argument("--checkpoint-dir", help="official weight files (default: $LATENTSYNC_CHECKPOINT_DIR)")
    p.add_argument("--cache-dir", help="demo weights' cache (default: $LATENTSYNC_DATA_DIR/cache)")
    p.add_argument("--device", help="cpu, cuda, cuda:N (default: $LATENTSYNC_DEVICE; auto: cuda when available)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _pick(flag: object, setting: object) -> object:
    return setting if flag is None else flag


def cmd_run(args: argparse.Namespace, settings: Callable[[], CommandSettings]) -> int:
    from latentsync_core.evaluation.generate import GenerationOptions, parse_unet_specs
    from latentsync_core.evaluation.report import write_report
    from latentsync_core.evaluation.runner import RunOptions, run_eval

    try:
        s = settings()
        dtype = args.dtype or s.dtype
        options = RunOptions(
            test_set=Path(args.test_set),
            unets=parse_unet_specs(args.unet),
            output=Path(args.output),
            generation=GenerationOptions(
                weights=args.weights or s.weights,
                checkpoint_dir=Path(args.checkpoint_dir or s.checkpoint_dir),
                cache_dir=Path(args.cache_dir or s.cache_dir),
                unet_config=Path(args.unet_config or s.unet_config),
                device=args.device or device_or_none(s),
                dtype=None if dtype == "auto" else dtype,
                detect_workers=_pick(args.detect_workers, s.detect_workers) or None,
            ),
            params=LipSyncParams(
                inference_steps=_pick(args.steps, s.inference_steps),
                guidance_scale=_pick(args.guidance, s.guidance_scale),
                seed=_pick(args.seed, s.seed),
                enable_deepcache=_pick(args.deepcache, s.enable_deepcache),
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


def cmd_syncnet_acc(args: argparse.Namespace, settings: Callable[[], CommandSettings]) -> int:
    from latentsync_core.evaluation.syncnet_acc import syncnet_accuracy

    try:
        device = args.device or device_or_none(settings())
        result = syncnet_accuracy(
            args.fileslist,
            args.syncnet,
            args.config,
            args.samples,
            args.seed,
            args.batch_size,
            device=device,
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
