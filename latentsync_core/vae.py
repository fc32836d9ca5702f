"""The SD VAE (diffusers ``AutoencoderKL``), always from a local folder."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL

from latentsync_core.models.checkpoint import CheckpointError

SCALING_FACTOR = 0.18215
SHIFT_FACTOR = 0.0


def load_vae(
    folder: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> AutoencoderKL:
    """Load ``config.json`` + weights from ``folder``; never touches the network."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"VAE not found: {folder}/config.json (run `latentsync download-weights`)")
    try:
        vae = AutoencoderKL.from_pretrained(str(folder), local_files_only=True, torch_dtype=dtype)
    except (OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"VAE in {folder} cannot be loaded: {exc}") from exc
    return vae.to(device).eval()


def encode(vae: AutoencoderKL, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """(N, 3, H, W) in [-1, 1] -> scaled latents (N, 4, H/8, W/8), sampled as upstream does."""
    latents = vae.encode(images.to(vae.dtype)).latent_dist.sample(generator=generator)
    return (latents - SHIFT_FACTOR) * SCALING_FACTOR


def decode(vae: AutoencoderKL, latents: torch.Tensor) -> torch.Tensor:
    """Scaled latents (N, 4, h, w) -> images (N, 3, 8h, 8w) in about [-1, 1]."""
    return vae.decode(latents.to(vae.dtype) / SCALING_FACTOR + SHIFT_FACTOR).sample
