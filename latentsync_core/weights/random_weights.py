"""Small random checkpoints in the real file formats, for tests and the demo mode.

Every parameter is drawn (zero-initialised ones too), so every path of the model,
motion modules and audio cross-attention included, changes the output.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
from whisper.model import ModelDimensions, Whisper

from latentsync_core.configs.unet import UNetModelConfig, load_model_section
from latentsync_core.models.unet import UNet3DConditionModel

TINY_UNET: dict[str, Any] = {
    "block_out_channels": [32, 64, 64, 64],
    "layers_per_block": 1,
    "sample_size": 8,
    "cross_attention_dim": 64,
}

TINY_WHISPER = ModelDimensions(
    n_mels=80,
    n_audio_ctx=1500,
    n_audio_state=64,
    n_audio_head=2,
    n_audio_layer=3,
    n_vocab=256,
    n_text_ctx=16,
    n_text_state=64,
    n_text_head=2,
    n_text_layer=1,
)


def randomize_(module: torch.nn.Module, seed: int) -> None:
    """Overwrite every floating parameter with N(0, 1/fan_in)-scaled values (norms near 1)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() >= 2:
                fan_in = math.prod(p.shape[1:])
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(fan_in))
            elif name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))


def tiny_unet_config(base: UNetModelConfig | None = None, **overrides: Any) -> UNetModelConfig:
    """The stage2_512 model section shrunk to a few hundred thousand parameters."""
    from latentsync_core.configs.loader import to_dict

    section = to_dict(base) if base is not None else to_dict(UNetModelConfig())
    section.update(TINY_UNET)
    section.update(overrides)
    return load_model_section(section, origin="tiny UNet config")


def write_random_unet_checkpoint(
    path: str | Path, config: UNetModelConfig, seed: int = 0, global_step: int = 0
) -> Path:
    """Write ``{"state_dict": ..., "global_step": ...}`` like ``latentsync_unet.pt``."""
    model = UNet3DConditionModel(config)
    randomize_(model, seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # processes building at once never share it
    torch.save({"state_dict": model.state_dict(), "global_step": global_step}, tmp)
    tmp.replace(path)  # never leave a half-written checkpoint behind
    return path


def write_random_whisper_checkpoint(path: str | Path, dims: ModelDimensions = TINY_WHISPER, seed: int = 0) -> Path:
    """Write ``{"dims": ..., "model_state_dict": ...}`` as openai-whisper's ``tiny.pt`` is laid out."""
    model = Whisper(dims)
    randomize_(model, seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save({"dims": dims.__dict__, "model_state_dict": model.state_dict()}, tmp)
    tmp.replace(path)
    return path
