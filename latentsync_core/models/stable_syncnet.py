"""StableSyncNet: LatentSync's SyncNet over 16-frame windows (mel window vs. mouth crops).

Two convolutional encoders of the same shape (one for the mel window, one for the
channel-stacked faces) each reduce their input to a 1x1 map; the flattened maps,
normalised to unit length, are compared by cosine similarity. Parameter names follow
upstream's ``stable_syncnet.pt`` so released checkpoints load strictly.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from latentsync_core.configs.syncnet import SyncNetEncoderConfig, SyncNetModelConfig, load_syncnet_model_section
from latentsync_core.models.attention import FeedForward
from latentsync_core.models.checkpoint import CheckpointError, load_strict, read_checkpoint
from latentsync_core.models.norm import GroupNorm  # the standard kernel also at 1x1 (the last blocks)


def _downsample_padding(stride: tuple[int, int]) -> tuple[int, int, int, int]:
    """F.pad amounts (left, right, top, bottom) before the unpadded 3x3 downsampling conv.

    Normally one extra row and column at the far side; an axis kept at stride 1 is padded
    on both sides so that it keeps its size.
    """
    if stride[0] == 1:
        return (0, 1, 1, 1)
    if stride[1] == 1:
        return (1, 1, 0, 1)
    return (0, 1, 0, 1)


class SyncResnetBlock(nn.Module):
    """Pre-activation residual block (GroupNorm, SiLU, 3x3 conv, twice), then an optional
    strided 3x3 conv that downsamples."""

    def __init__(self, in_channels: int, out_channels: int, downsample: int | list[int], dropout: float = 0.0):
        super().__init__()
        self.norm1 = GroupNorm(32, in_channels, eps=1e-6)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.norm2 = GroupNorm(32, out_channels, eps=1e-6)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)
        self.act_fn = nn.SiLU()
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None
        stride = (downsample, downsample) if isinstance(downsample, int) else (downsample[0], downsample[1])
        if stride == (1, 1):
            self.downsample_conv = None
        else:
            self.downsample_conv = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=stride)
            self.pad = _downsample_padding(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.act_fn(self.norm1(x)))
        h = self.conv2(self.dropout(self.act_fn(self.norm2(h))))
        h = h + (x if self.conv_shortcut is None else self.conv_shortcut(x))
        if self.downsample_conv is not None:
            h = self.downsample_conv(F.pad(h, self.pad))
        return h


class SyncSelfAttention(nn.Module):
    """Multi-head self-attention with biased projections (the UNet's attention has none)."""

    def __init__(self, dim: int, heads: int = 8):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(dim, dim)
        self.to_v = nn.Linear(dim, dim)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim), nn.Dropout(0.0)])  # key `to_out.0`

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = (
            proj(x).view(b, n, self.heads, c // self.heads).transpose(1, 2)
            for proj in (self.to_q, self.to_k, self.to_v)
        )
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out[0](out.transpose(1, 2).reshape(b, n, c))


class SyncAttentionBlock(nn.Module):
    """Transformer layer over the pixels of a feature map, wrapped in 1x1 convs and a residual."""

    def __init__(self, dim: int):
        super().__init__()
        # Registered in the checkpoint's key order.
        self.norm1 = GroupNorm(32, dim, eps=1e-6)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)
        self.conv_in = nn.Conv2d(dim, dim, kernel_size=1)
        self.conv_out = nn.Conv2d(dim, dim, kernel_size=1)
        self.attn = SyncSelfAttention(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, height, width = x.shape
        h = self.conv_in(self.norm1(x)).flatten(2).transpose(1, 2)  # (b, h*w, c)
        h = h + self.attn(self.norm2(h))
        h = h + self.ff(self.norm3(h))
        h = h.transpose(1, 2).reshape(b, c, height, width)
        return x + self.conv_out(h)


class SyncEncoder(nn.Module):
    """conv_in, one residual block per entry of ``block_out_channels`` (each optionally
    followed by an attention block, sharing the ``down_blocks`` index sequence), then
    GroupNorm and ReLU."""

    def __init__(self, cfg: SyncNetEncoderConfig):
        super().__init__()
        channels = cfg.block_out_channels
        self.conv_in = nn.Conv2d(cfg.in_channels, channels[0], kernel_size=3, padding=1)
        self.down_blocks = nn.ModuleList()
        previous = channels[0]
        for out, factor, attn in zip(channels, cfg.downsample_factors, cfg.attn_blocks, strict=True):
            self.down_blocks.append(SyncResnetBlock(previous, out, factor, cfg.dropout))
            if attn:
                self.down_blocks.append(SyncAttentionBlock(out))
            previous = out
        self.norm_out = GroupNorm(32, channels[-1], eps=1e-6)
        self.act_fn_out = nn.ReLU()
        self.gradient_checkpointing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(x)
        for block in self.down_blocks:
            if self.gradient_checkpointing and self.training:
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return self.act_fn_out(self.norm_out(x))


class StableSyncNet(nn.Module):
    """``forward(image, audio)`` -> (vision_embeds, audio_embeds), unit vectors (B, C).

    ``image``: (B, 3*frames, H, W) faces stacked on channels; ``audio``: (B, 1, 80, 52) mel.
    """

    def __init__(self, config: SyncNetModelConfig):
        super().__init__()
        self.config = config
        self.audio_encoder = SyncEncoder(config.audio_encoder)
        self.visual_encoder = SyncEncoder(config.visual_encoder)
        self.eval()

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | SyncNetModelConfig) -> StableSyncNet:
        """Build from a syncnet YAML ``model:`` section (a dict) or its dataclass."""
        cfg = section if isinstance(section, SyncNetModelConfig) else load_syncnet_model_section(dict(section))
        return cls(cfg)

    def enable_gradient_checkpointing(self, enabled: bool = True) -> None:
        self.audio_encoder.gradient_checkpointing = enabled
        self.visual_encoder.gradient_checkpointing = enabled

    def forward(self, image: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        vision = self.visual_encoder(image).flatten(1)
        sound = self.audio_encoder(audio).flatten(1)
        return F.normalize(vision, p=2, dim=1), F.normalize(sound, p=2, dim=1)


def load_stable_syncnet(
    path: str | Path,
    config: SyncNetModelConfig | Mapping[str, Any],
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> StableSyncNet:
    """A StableSyncNet for ``config`` with the weights of ``path`` (``{"state_dict": ...}`` or a
    bare state dict), loaded strictly, in eval mode."""
    ckpt = read_checkpoint(path, "StableSyncNet")
    state_dict = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"{path} holds no state dict (expected {{'state_dict': ...}} or a bare state dict)")
    with torch.device("meta"):
        model = StableSyncNet.from_config(config)
    load_strict(model, state_dict, str(path), "StableSyncNet config")
    return model.to(device=device, dtype=dtype).eval()
