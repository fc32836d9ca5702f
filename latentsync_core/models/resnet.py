"""Convolutional pieces of the UNet, applied frame by frame on (b, c, f, h, w) tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from latentsync_core.models.norm import GroupNorm


class InflatedConv3d(nn.Conv2d):
    """A 2D convolution applied to every frame of a (b, c, f, h, w) tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        b, c, f, h, w = x.shape
        y = super().forward(x.transpose(1, 2).reshape(b * f, c, h, w))
        return y.reshape(b, f, *y.shape[1:]).transpose(1, 2)


class ResnetBlock3D(nn.Module):
    """Pre-norm residual block with time-embedding bias.

    The GroupNorms here see the 5D tensor, so their statistics span all frames of the
    window (not each frame alone): the released weights were trained that way.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        temb_channels: int,
        groups: int,
        eps: float,
        output_scale_factor: float = 1.0,
        time_embedding_norm: str = "default",
    ):
        super().__init__()
        if time_embedding_norm != "default":
            raise ValueError(f"resnet_time_scale_shift={time_embedding_norm!r} is not supported (only 'default')")
        self.output_scale_factor = output_scale_factor
        self.norm1 = GroupNorm(groups, in_channels, eps=eps)
        self.conv1 = InflatedConv3d(in_channels, out_channels, kernel_size=3, padding=1)
        self.time_emb_proj = nn.Linear(temb_channels, out_channels)
        self.norm2 = GroupNorm(groups, out_channels, eps=eps)
        self.conv2 = InflatedConv3d(out_channels, out_channels, kernel_size=3, padding=1)
        self.conv_shortcut = (
            InflatedConv3d(in_channels, out_channels, kernel_size=1) if in_channels != out_channels else None
        )

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        skip = self.conv_shortcut(x) if self.conv_shortcut is not None else x
        out = skip + h
        if self.output_scale_factor != 1.0:
            out = out / self.output_scale_factor
        return out


class Downsample3D(nn.Module):
    def __init__(self, channels: int, padding: int = 1):
        super().__init__()
        self.conv = InflatedConv3d(channels, channels, kernel_size=3, stride=2, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample3D(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = InflatedConv3d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor, output_size: tuple[int, int] | None = None) -> torch.Tensor:
        b, c, f, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * f, c, h, w)
        dtype = frames.dtype
        if dtype == torch.bfloat16:  # nearest upsampling lacks bf16 kernels on some builds
            frames = frames.float()
        if output_size is None:
            frames = F.interpolate(frames, scale_factor=2.0, mode="nearest")
        else:
            frames = F.interpolate(frames, size=output_size, mode="nearest")
        frames = frames.to(dtype)
        x = frames.reshape(b, f, c, *frames.shape[-2:]).transpose(1, 2)
        return self.conv(x)
