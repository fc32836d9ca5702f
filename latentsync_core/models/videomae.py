"""VideoMAE-v2 video transformer (the fine-tuned ViT-g/14 encoder), the feature network of TREPA.

A video (B, 3, T, H, W) in [0, 1] is cut into tubelets (``tubelet_size`` frames x
``patch_size``^2 pixels, one Conv3d), a fixed sinusoidal position table is added, pre-norm
transformer blocks follow, and the mean of the tokens through a LayerNorm is the feature
vector (B, embed_dim). Parameter names follow the released
``vit_g_hybrid_pt_1200e_ssv2_ft.pth`` (VideoMAE-v2, giant, fine-tuned on Something-Something
v2, 174 classes) so that it loads strictly; its classifier ``head`` is kept for that reason
but TREPA never uses it. Inference-only: stochastic depth and dropout (training-time
regularisers) are not part of this network.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


@dataclass(frozen=True)
class VideoMAEConfig:
    img_size: int = 224
    patch_size: int = 14
    num_frames: int = 16
    tubelet_size: int = 2
    embed_dim: int = 1408
    depth: int = 40
    num_heads: int = 16
    mlp_hidden: int = 6144  # int(1408 * 48 / 11)
    num_classes: int = 174
    norm_eps: float = 1e-6

    @property
    def grid(self) -> tuple[int, int, int]:
        """Tokens along (time, height, width)."""
        side = self.img_size // self.patch_size
        return self.num_frames // self.tubelet_size, side, side


VIT_G_SSV2 = VideoMAEConfig()  # the checkpoint upstream's TREPA loads


@lru_cache(maxsize=8)
def sinusoid_table(positions: int, dim: int) -> torch.Tensor:
    """(1, positions, dim) float32: sin at even, cos at odd channels of pos / 10000^(2*(j//2)/dim),
    computed in float64 as the original's numpy code does."""
    pos = torch.arange(positions, dtype=torch.float64)[:, None]
    rate = torch.pow(10000.0, 2 * (torch.arange(dim, dtype=torch.float64) // 2) / dim)
    angles = pos / rate
    table = torch.empty_like(angles)
    table[:, 0::2] = torch.sin(angles[:, 0::2])
    table[:, 1::2] = torch.cos(angles[:, 1::2])
    return table.float().unsqueeze(0)


class TubeletEmbed(nn.Module):
    def __init__(self, cfg: VideoMAEConfig):
        super().__init__()
        kernel = (cfg.tubelet_size, cfg.patch_size, cfg.patch_size)
        self.proj = nn.Conv3d(3, cfg.embed_dim, kernel_size=kernel, stride=kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, t*h*w, D), tokens in (t, h, w) order


class VideoMAEAttention(nn.Module):
    """Self-attention with one fused qkv matrix; q and v have biases, k has none."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        bias = torch.cat([self.q_bias, torch.zeros_like(self.q_bias), self.v_bias])
        qkv = F.linear(x, self.qkv.weight, bias).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class VideoMAEMlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class VideoMAEBlock(nn.Module):
    def __init__(self, cfg: VideoMAEConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        self.attn = VideoMAEAttention(cfg.embed_dim, cfg.num_heads)
        self.norm2 = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        self.mlp = VideoMAEMlp(cfg.embed_dim, cfg.mlp_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VideoMAEEncoder(nn.Module):
    """``forward_features(video)`` -> (B, embed_dim); ``forward`` adds the classifier."""

    def __init__(self, cfg: VideoMAEConfig = VIT_G_SSV2):
        super().__init__()
        if cfg.embed_dim % cfg.num_heads:
            raise ValueError(f"embed_dim {cfg.embed_dim} is not a multiple of num_heads {cfg.num_heads}")
        self.config = cfg
        self.patch_embed = TubeletEmbed(cfg)
        self.blocks = nn.ModuleList(VideoMAEBlock(cfg) for _ in range(cfg.depth))
        self.fc_norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        self.head = nn.Linear(cfg.embed_dim, cfg.num_classes)
        self.gradient_checkpointing = False

    def position_table(self, frames: int) -> torch.Tensor:
        """The (1, tokens, D) table for a clip of ``frames`` frames. Other lengths than the
        trained one stretch the table along time (trilinear), as the original does, including
        its +0.1 that keeps the rounded output length."""
        t_full, gh, gw = self.config.grid
        table = sinusoid_table(t_full * gh * gw, self.config.embed_dim)
        t = frames // self.config.tubelet_size
        if t == t_full:
            return table
        grid = table.transpose(1, 2).reshape(1, -1, t_full, gh, gw)
        stretched = F.interpolate(grid, scale_factor=((t + 0.1) / t_full, 1, 1), mode="trilinear")
        if stretched.shape[2] != t:
            raise ValueError(f"cannot fit the position table to {frames} frames")
        return stretched.reshape(1, self.config.embed_dim, -1).transpose(1, 2)

    def forward_features(self, video: torch.Tensor) -> torch.Tensor:
        size = self.config.img_size
        if video.dim() != 5 or video.shape[1] != 3 or video.shape[-2:] != (size, size):
            raise ValueError(f"VideoMAE takes (B, 3, T, {size}, {size}) videos, got {tuple(video.shape)}")
        x = self.patch_embed(video)
        x = x + self.position_table(video.shape[2]).to(device=x.device, dtype=x.dtype)
        for block in self.blocks:
            if self.gradient_checkpointing and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return self.fc_norm(x.mean(dim=1))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(video))


def parameter_count(cfg: VideoMAEConfig) -> int:
    """Parameters of an encoder for ``cfg`` without building it (for memory planning)."""
    d, h = cfg.embed_dim, cfg.mlp_hidden
    per_block = 2 * 2 * d + (3 * d * d + 2 * d) + (d * d + d) + (d * h + h) + (h * d + d)
    embed = 3 * cfg.tubelet_size * cfg.patch_size**2 * d + d
    return embed + cfg.depth * per_block + 2 * d + d * cfg.num_classes + cfg.num_classes
