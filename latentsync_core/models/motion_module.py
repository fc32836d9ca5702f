"""Temporal "motion modules": self-attention across the frames of a window at every pixel."""

from __future__ import annotations

import math

import torch
from torch import nn

from latentsync_core.models.attention import Attention, FeedForward
from latentsync_core.models.norm import GroupNorm


class PositionalEncoding(nn.Module):
    """Sinusoidal frame-position encoding; ``pe`` is a checkpoint buffer (max_len frames)."""

    def __init__(self, dim: int, max_len: int):
        super().__init__()
        position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
        freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
        pe = torch.zeros(1, max_len, dim)
        pe[0, :, 0::2] = torch.sin(position * freq)
        pe[0, :, 1::2] = torch.cos(position * freq)
        self.register_buffer("pe", pe)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > self.pe.shape[1]:
            raise ValueError(f"a window holds at most {self.pe.shape[1]} frames, got {x.shape[1]}")
        return x + self.pe[:, : x.shape[1]].to(x.dtype)


class TemporalAttention(Attention):
    def __init__(self, dim: int, heads: int, dim_head: int, position_encoding: bool, max_len: int):
        super().__init__(dim, heads, dim_head)
        self.pos_encoder = PositionalEncoding(dim, max_len) if position_encoding else None

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:  # type: ignore[override]
        bf, s, c = x.shape
        b = bf // frames
        seq = x.reshape(b, frames, s, c).transpose(1, 2).reshape(b * s, frames, c)
        if self.pos_encoder is not None:
            seq = self.pos_encoder(seq)
        out = super().forward(seq)
        return out.reshape(b, s, frames, c).transpose(1, 2).reshape(bf, s, c)


class TemporalTransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int, n_attention: int, position_encoding: bool, max_len: int):
        super().__init__()
        self.attention_blocks = nn.ModuleList(
            [TemporalAttention(dim, heads, dim_head, position_encoding, max_len) for _ in range(n_attention)]
        )
        self.norms = nn.ModuleList([nn.LayerNorm(dim) for _ in range(n_attention)])
        self.ff = FeedForward(dim)
        self.ff_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        for attention, norm in zip(self.attention_blocks, self.norms, strict=True):
            x = attention(norm(x), frames) + x
        return self.ff(self.ff_norm(x)) + x


class TemporalTransformer(nn.Module):
    def __init__(
        self,
        channels: int,
        heads: int,
        dim_head: int,
        num_layers: int,
        n_attention: int,
        position_encoding: bool,
        max_len: int,
        norm_num_groups: int = 32,
    ):
        super().__init__()
        inner = heads * dim_head
        self.norm = GroupNorm(norm_num_groups, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, inner)
        self.transformer_blocks = nn.ModuleList(
            [
                TemporalTransformerBlock(inner, heads, dim_head, n_attention, position_encoding, max_len)
                for _ in range(num_layers)
            ]
        )
        self.proj_out = nn.Linear(inner, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, f, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * f, c, h, w)
        y = self.norm(frames).permute(0, 2, 3, 1).reshape(b * f, h * w, c)
        y = self.proj_in(y)
        for block in self.transformer_blocks:
            y = block(y, f)
        y = self.proj_out(y).reshape(b * f, h, w, c).permute(0, 3, 1, 2)
        out = y + frames
        return out.reshape(b, f, c, h, w).transpose(1, 2)


class VanillaTemporalModule(nn.Module):
    def __init__(
        self,
        in_channels: int,
        num_attention_heads: int = 8,
        num_transformer_block: int = 1,
        attention_block_types: tuple[str, ...] | list[str] = ("Temporal_Self", "Temporal_Self"),
        temporal_position_encoding: bool = True,
        temporal_position_encoding_max_len: int = 24,
        temporal_attention_dim_div: int = 1,
        zero_initialize: bool = True,
    ):
        super().__init__()
        for kind in attention_block_types:
            if kind != "Temporal_Self":
                raise ValueError(f"motion module attention block {kind!r} is not supported (only Temporal_Self)")
        self.temporal_transformer = TemporalTransformer(
            in_channels,
            num_attention_heads,
            in_channels // num_attention_heads // temporal_attention_dim_div,
            num_transformer_block,
            len(attention_block_types),
            temporal_position_encoding,
            temporal_position_encoding_max_len,
        )
        if zero_initialize:  # a fresh module starts as the identity
            nn.init.zeros_(self.temporal_transformer.proj_out.weight)
            nn.init.zeros_(self.temporal_transformer.proj_out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.temporal_transformer(x)
