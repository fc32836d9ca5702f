"""``latentsync train syncnet``: the command line of :mod:`latentsync_core.training.syncnet_trainer`.

``add_syncnet_parser(train_subparsers, settings)`` registers ``syncnet`` under a
``train`` command group (``training/cli.py``, the one place that group is assembled).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from latentsync_core.common.cli_exit import EXIT_INTERRUPTED, EXIT_OK, fail
from latentsync_core.common.cli_settings import CommandSettings, device_or_none
from latentsync_core.common.errors import CodedError
from latentsync_core.configs.loader import ConfigError
from latentsync_core.configs.syncnet import DEFAULT_SYNCNET_CONFIG


def add_syncnet_parser(
    subparsers: argparse._SubParsersAction, settings: Callable[[], CommandSettings]
) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "syncnet",
        help="train StableSyncNet on the clips of `latentsync preprocess`",
        description="Train StableSyncNet: aligned vs. shifted face/mel windows of DATA's clips. "
        "Checkpoints hold the whole state; --resume continues exactly where a run stopped.",
    )
    p.add_argument("--config", default=str(DEFAULT_SYNCNET_CONFIG), help="configs/syncnet/*.yaml")
    p.add_argument("--data", required=True, help="output folder of `latentsync preprocess` (its file lists)")
    p.add_argument("--output", required=True, help="run folder: checkpoints/, tensorboard/, config.yaml")
    p.add_argument("--max-steps", type=int, help="stop after this many optimizer steps (default: the config's)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --output")
    p.add_argument("--device", help="cuda, cuda:1, cpu (default: $LATENTSYNC_DEVICE; auto: cuda when available)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=lambda args: run(args, settings))
    return p


def run(args: argparse.Namespace, settings: Callable[[], CommandSettings]) -> int:
    from latentsync_core.configs.syncnet import load_syncnet_config
    from latentsync_core.training.syncnet_trainer import train_syncnet

    try:
        device = args.device or device_or_none(settings())
        cfg = load_syncnet_config(args.config, overrides=args.set)
        result = train_syncnet(
            cfg, args.data, args.output, args.max_steps, args.resume, device, progress=not args.no_progress
        )
    except ConfigError as exc:
        return fail("CONFIG_INVALID", str(exc))
    except CodedError as exc:
        return fail(exc.code, exc.message)
    except KeyboardInterrupt:
        return fail("INTERRUPTED", "stopped; rerun with --resume to continue", EXIT_INTERRUPTED)
    val = ", ".join(f"val {k} {v:.4f}" for k, v in result.val.items())
    print(f"step {result.step}: train loss {result.train_loss:.4f}" + (f", {val}" if val else ""))
    if result.checkpoint:
        print(f"checkpoint {result.checkpoint}")
    return EXIT_OK
