"""Demo weights: small, random, deterministic, in the real file formats.

They let the whole pipeline run on a CPU without the official files. They produce no
real lip-sync: the mouth region is filled with what a random network makes of it.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import torch
from diffusers import AutoencoderKL

from latentsync_core.configs.loader import CONFIG_DIR
from latentsync_core.configs.unet import UNetModelConfig, load_unet_config
from latentsync_core.weights.official import WeightPaths
from latentsync_core.weights.random_weights import (
    randomize_,
    tiny_unet_config,
    write_random_unet_checkpoint,
    write_random_whisper_checkpoint,
)

log = logging.getLogger(__name__)

DEMO_NOTICE = "DEMO WEIGHTS: random model, no real lip-sync"
DEMO_RESOLUTION = 128  # small enough for a CPU; the code path is the same as at 512
DEMO_SEED = 20240601
_VERSION = "v1"  # bump when the demo architecture changes, so caches are rebuilt


def demo_unet_config() -> UNetModelConfig:
    base = load_unet_config(CONFIG_DIR / "unet" / "stage2_512.yaml").model
    return tiny_unet_config(base)


def ensure_demo_weights(cache_dir: Path) -> WeightPaths:
    """Build the demo checkpoints once under ``cache_dir`` and return their paths."""
    root = cache_dir / f"demo-weights-{_VERSION}"
    paths = WeightPaths.under(root)
    if paths.unet.is_file() and paths.whisper.is_file() and (paths.vae / "config.json").is_file():
        return paths
    log.warning("building demo weights in %s (%s)", root, DEMO_NOTICE)
    write_random_unet_checkpoint(paths.unet, demo_unet_config(), seed=DEMO_SEED)
    write_random_whisper_checkpoint(paths.whisper, seed=DEMO_SEED + 1)
    torch.manual_seed(DEMO_SEED + 2)
    vae = AutoencoderKL(
        block_out_channels=(8, 16, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        norm_num_groups=4,
        latent_channels=4,
        sample_size=DEMO_RESOLUTION,
    )
    randomize_(vae, DEMO_SEED + 3)
    tmp = paths.vae.with_name(f"{paths.vae.name}.{os.getpid()}.tmp")  # one per process: workers start together
    vae.save_pretrained(tmp)
    if paths.vae.exists():
        shutil.rmtree(paths.vae, ignore_errors=True)
    try:
        tmp.rename(paths.vae)
    except OSError:  # another process put the same (seeded, identical) VAE there first
        shutil.rmtree(tmp, ignore_errors=True)
    return paths
