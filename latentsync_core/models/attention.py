"""Attention layers of the UNet: multi-head attention, GEGLU feed-forward and the
per-frame spatial transformer with audio cross-attention."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from latentsync_core.models.norm import GroupNorm


class Attention(nn.Module):
    """Multi-head attention through ``scaled_dot_product_attention`` (flash/memory-efficient
    kernels on a GPU). Parameter names follow the LatentSync checkpoint."""

    def __init__(self, query_dim: int, heads: int, dim_head: int, cross_attention_dim: int | None = None):
        super().__init__()
        inner = heads * dim_head
        kv_dim = cross_attention_dim if cross_attention_dim is not None else query_dim
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(kv_dim, inner, bias=False)
        self.to_v = nn.Linear(kv_dim, inner, bias=False)
        # A list (not a single Linear) to keep the checkpoint key `to_out.0`; index 1 was dropout.
        self.to_out = nn.ModuleList([nn.Linear(inner, query_dim), nn.Dropout(0.0)])

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        b, n, _ = x.shape
        q = self.to_q(x).view(b, n, self.heads, -1).transpose(1, 2)
        k = self.to_k(context).view(b, context.shape[1], self.heads, -1).transpose(1, 2)
        v = self.to_v(context).view(b, context.shape[1], self.heads, -1).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(1, 2).reshape(b, n, -1)
        return self.to_out[0](out)


class GEGLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden, gate = self.proj(x).chunk(2, dim=-1)
        return hidden * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU MLP with 4x expansion; keys ``net.0.proj`` and ``net.2`` as in the checkpoint."""

    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        inner = dim * mult
        self.net = nn.ModuleList([GEGLU(dim, inner), nn.Dropout(0.0), nn.Linear(inner, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class BasicTransformerBlock(nn.Module):
    """Spatial self-attention, audio cross-attention, feed-forward (pre-norm, residual)."""

    def __init__(self, dim: int, heads: int, dim_head: int, cross_attention_dim: int, add_audio_layer: bool):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads, dim_head)
        if add_audio_layer:
            self.norm2 = nn.LayerNorm(dim)
            self.attn2 = Attention(dim, heads, dim_head, cross_attention_dim=cross_attention_dim)
        else:
            self.attn2 = None
        self.ff = FeedForward(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        x = self.attn1(self.norm1(x)) + x
        if self.attn2 is not None and context is not None:
            x = self.attn2(self.norm2(x), context) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    """Transformer over the pixels of each frame separately (upstream ``Transformer3DModel``)."""

    def __init__(
        self,
        channels: int,
        heads: int,
        cross_attention_dim: int,
        norm_num_groups: int,
        add_audio_layer: bool,
    ):
        super().__init__()
        self.norm = GroupNorm(norm_num_groups, channels, eps=1e-6)
        self.proj_in = nn.Conv2d(channels, channels, kernel_size=1)
        self.transformer_blocks = nn.ModuleList(
            [BasicTransformerBlock(channels, heads, channels // heads, cross_attention_dim, add_audio_layer)]
        )
        self.proj_out = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        b, c, f, h, w = x.shape
        x = x.transpose(1, 2).reshape(b * f, c, h, w)
        residual = x
        y = self.proj_in(self.norm(x))
        y = y.permute(0, 2, 3, 1).reshape(b * f, h * w, c)
        if context is not None and context.dim() == 4:  # (b, f, tokens, dim) -> ((b f), tokens, dim)
            context = context.reshape(b * f, context.shape[2], context.shape[3])
        for block in self.transformer_blocks:
            y = block(y, context)
        y = y.reshape(b * f, h, w, c).permute(0, 3, 1, 2)
        y = self.proj_out(y) + residual
        return y.reshape(b, f, c, h, w).transpose(1, 2)
