"""The SD VAE (diffusers ``AutoencoderKL``), always from a local folder."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL

from latentsync_core.models.checkpoint import CheckpointError

SCALING_FACTOR = 0.18215


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
