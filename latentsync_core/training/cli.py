"""``latentsync train unet`` and ``latentsync train export``.

``add_parser(subparsers, settings)`` registers the ``train`` group on the ``latentsync`` parser
(``func`` runs the command and returns the exit status: 0 done, 2 could not run, 130
interrupted). Failures print ``error [CODE]: sentence`` on stderr. Under ``torchrun``
every process runs the same command; rank 0 writes checkpoints, logs and validation.
A flag left out takes the deployment's setting (``LATENTSYNC_WEIGHTS``, ``_CHECKPOINT_DIR``,
``_DATA_DIR``, ``_UNET_CONFIG``, ``_DEVICE``; ``common/cli_settings.py``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from latentsync_core.common.cli_exit import EXIT_INTERRUPTED, EXIT_OK, fail, run_standalone
from latentsync_core.common.cli_settings import CommandSettings, device_or_none, read_settings
from latentsync_core.common.errors import CodedError
from latentsync_core.configs.loader import CONFIG_DIR, ConfigError
from latentsync_core.training.syncnet_cli import add_syncnet_parser


def add_parser(
    subparsers: argparse._SubParsersAction, settings: Callable[[], CommandSettings] = read_settings
) -> argparse.ArgumentParser:
    """Register ``train`` with its ``unet``, ``syncnet`` and ``export`` commands; returns the
    group's parser. ``settings()`` gives the values of the flags left out."""
    p = subparsers.add_parser("train", help="train or fine-tune models; export a trained UNet")
    sub = p.add_subparsers(dest="train_command", required=True)
    add_syncnet_parser(sub, settings)
    u = sub.add_parser(
        "unet",
        help="train the UNet (stage 1 / stage 2) or fine-tune a released one",
        description="Trains on the clips of `latentsync preprocess` (DATA/fileslist_train.txt); validates on "
        "DATA/fileslist_val.txt with the inference pipeline and SyncNetV2. Resumable (--resume).",
    )
    u.add_argument(
        "--config",
        help="UNet training YAML (default: configs/unet/demo.yaml with demo weights, else $LATENTSYNC_UNET_CONFIG)",
    )
    u.add_argument("--data", required=True, help="output folder of `latentsync preprocess`")
    u.add_argument("--output", required=True, help="run folder: checkpoints/, tensorboard/, val/, config.yaml")
    u.add_argument("--max-steps", type=int, default=None, help="stop at this global step")
    u.add_argument("--resume", action="store_true", help="continue from the run's latest state")
    u.add_argument(
        "--weights",
        choices=("official", "demo"),
        help="official: VAE, Whisper, SyncNets from --checkpoint-dir; demo: small random ones "
        "(default: $LATENTSYNC_WEIGHTS)",
    )
    u.add_argument(
        "--checkpoint-dir",
        help="official weight files, the service's layout (default: $LATENTSYNC_CHECKPOINT_DIR); with demo "
        "weights, where they are built (default: the service's cache, $LATENTSYNC_DATA_DIR/cache)",
    )
    u.add_argument("--device", help="cpu or cuda (default: $LATENTSYNC_DEVICE; auto: cuda when available)")
    u.add_argument("--no-validation", action="store_true", help="skip validation (sync scoring)")
    u.add_argument(
        "--dtype",
        choices=["float32", "float64"],
        default="float32",
        help="float64 only checks the arithmetic (slow; e.g. DDP against one process)",
    )
    u.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override, e.g. run.seed=1")
    u.add_argument("--no-progress", action="store_true", help="no progress bar")
    u.set_defaults(func=lambda args: run_unet(args, settings))
    e = sub.add_parser("export", help="write a run's UNet as latentsync_unet.pt (strictly checked)")
    e.add_argument("run", help="run folder (or one state file)")
    e.add_argument("--output", required=True, help="latentsync_unet.pt to write")
    e.add_argument("--which", choices=("best", "last"), default="best", help="best by LSE-C (default) or last")
    e.set_defaults(func=run_export)
    return p


def _weight_source(args: argparse.Namespace, s: CommandSettings) -> tuple[str, Path, str | None]:
    """Weights kind, their folder and the device: each flag, else its setting. Demo weights are
    built where the service builds them, so that both use the same files."""
    kind = args.weights or s.weights
    folder = Path(args.checkpoint_dir) if args.checkpoint_dir else s.cache_dir if kind == "demo" else s.checkpoint_dir
    return kind, folder, args.device or device_or_none(s)


def _default_config(kind: str, s: CommandSettings) -> Path:
    # The demo weights only fit the demo model section; official ones the served UNet's config.
    return CONFIG_DIR / "unet" / "demo.yaml" if kind == "demo" else s.unet_config


def run_unet(args: argparse.Namespace, settings: Callable[[], CommandSettings]) -> int:
    import torch

    from latentsync_core.configs.loader import to_dict
    from latentsync_core.configs.unet import load_unet_config
    from latentsync_core.storage.atomic import write_text_atomic
    from latentsync_core.training.distributed import init_distributed, shutdown
    from latentsync_core.training.unet_models import WeightSource
    from latentsync_core.training.unet_trainer import TrainOptions, UNetTrainer

    info = None
    try:
        s = settings()
        kind, folder, device = _weight_source(args, s)
        cfg = load_unet_config(args.config or _default_config(kind, s), args.set)
        info = init_distributed(device)
        output = Path(args.output)
        if info.is_main:
            output.mkdir(parents=True, exist_ok=True)
            from omegaconf import OmegaConf

            write_text_atomic(output / "config.yaml", OmegaConf.to_yaml(to_dict(cfg)))
        options = TrainOptions(
            data_dir=Path(args.data),
            output_dir=output,
            weights=WeightSource(kind, folder),
            max_steps=args.max_steps,
            resume=args.resume,
            progress=not args.no_progress,
            validate=not args.no_validation,
            dtype=torch.float64 if args.dtype == "float64" else torch.float32,
        )
        summary = UNetTrainer(cfg, options, info).run()
    except ConfigError as exc:
        return fail("CONFIG_INVALID", str(exc))
    except CodedError as exc:
        return fail(exc.code, exc.message)
    except KeyboardInterrupt:
        return fail("INTERRUPTED", "stopped; rerun with --resume to continue from the last state", EXIT_INTERRUPTED)
    finally:
        if info is not None:
            shutdown(info)
    if info.is_main:
        print(f"trained to step {summary.step}; last state {summary.last_state}")
    return EXIT_OK


def run_export(args: argparse.Namespace) -> int:
    from latentsync_core.training.export import export_unet

    try:
        state, step = export_unet(args.run, args.output, args.which)
    except CodedError as exc:
        return fail(exc.code, exc.message)
    print(f"wrote {args.output} (step {step}, from {state})")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry: ``python -m latentsync_core.training.cli train unet|syncnet|export ...``."""
    return run_standalone(add_parser, argv)


if __name__ == "__main__":
    sys.exit(main())
