"""Down, mid and up blocks of the UNet: resnets, spatial transformers and motion modules."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from latentsync_core.models.attention import SpatialTransformer
from latentsync_core.models.motion_module import VanillaTemporalModule
from latentsync_core.models.resnet import Downsample3D, ResnetBlock3D, Upsample3D


def make_motion_module(channels: int, kind: str, kwargs: dict[str, Any]) -> VanillaTemporalModule:
    if kind != "Vanilla":
        raise ValueError(f"motion_module_type {kind!r} is not supported (only 'Vanilla')")
    return VanillaTemporalModule(channels, **kwargs)


class _Block(nn.Module):
    """Shared layer loop: resnet, then (optionally) spatial transformer, then motion module."""

    gradient_checkpointing = False

    def _layer(self, i: int, x: torch.Tensor, temb: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        x = self._run(self.resnets[i], x, temb)
        if self.attentions is not None:
            x = self._run(self.attentions[i], x, context)
        if self.motion_modules[i] is not None:
            x = self._run(self.motion_modules[i], x)
        return x

    def _run(self, module: nn.Module, *args: Any) -> torch.Tensor:
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return checkpoint(module, *args, use_reentrant=False)
        return module(*args)


def _attentions(n: int, channels: int, cfg: dict[str, Any], enabled: bool) -> nn.ModuleList | None:
    if not enabled:
        return None
    return nn.ModuleList(
        [
            SpatialTransformer(
                channels,
                cfg["attention_heads"],
                cfg["cross_attention_dim"],
                cfg["groups"],
                cfg["add_audio_layer"],
            )
            for _ in range(n)
        ]
    )


def _motion(n: int, channels: int, cfg: dict[str, Any], enabled: bool) -> nn.ModuleList:
    return nn.ModuleList(
        [make_motion_module(channels, cfg["motion_type"], cfg["motion_kwargs"]) if enabled else None for _ in range(n)]
    )


class DownBlock(_Block):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_layers: int,
        add_downsample: bool,
        cross_attention: bool,
        use_motion_module: bool,
        cfg: dict[str, Any],
    ):
        super().__init__()
        self.resnets = nn.ModuleList(
            [
                ResnetBlock3D(
                    in_channels if i == 0 else out_channels,
                    out_channels,
                    cfg["temb_channels"],
                    cfg["groups"],
                    cfg["eps"],
                    time_embedding_norm=cfg["time_scale_shift"],
                )
                for i in range(num_layers)
            ]
        )
        self.attentions = _attentions(num_layers, out_channels, cfg, cross_attention)
        self.motion_modules = _motion(num_layers, out_channels, cfg, use_motion_module)
        self.downsamplers = (
            nn.ModuleList([Downsample3D(out_channels, padding=cfg["downsample_padding"])]) if add_downsample else None
        )

    def forward(
        self, x: torch.Tensor, temb: torch.Tensor, context: torch.Tensor | None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        for i in range(len(self.resnets)):
            x = self._layer(i, x, temb, context)
            skips.append(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            skips.append(x)
        return x, skips


class UpBlock(_Block):
    def __init__(
        self,
        in_channels: int,
        prev_output_channels: int,
        out_channels: int,
        num_layers: int,
        add_upsample: bool,
        cross_attention: bool,
        use_motion_module: bool,
        cfg: dict[str, Any],
    ):
        super().__init__()
        resnets = []
        for i in range(num_layers):
            skip_channels = in_channels if i == num_layers - 1 else out_channels
            resnet_in = prev_output_channels if i == 0 else out_channels
            resnets.append(
                ResnetBlock3D(
                    resnet_in + skip_channels,
                    out_channels,
                    cfg["temb_channels"],
                    cfg["groups"],
                    cfg["eps"],
                    time_embedding_norm=cfg["time_scale_shift"],
                )
            )
        self.resnets = nn.ModuleList(resnets)
        self.attentions = _attentions(num_layers, out_channels, cfg, cross_attention)
        self.motion_modules = _motion(num_layers, out_channels, cfg, use_motion_module)
        self.upsamplers = nn.ModuleList([Upsample3D(out_channels)]) if add_upsample else None

    def forward(
        self,
        x: torch.Tensor,
        skips: list[torch.Tensor],
        temb: torch.Tensor,
        context: torch.Tensor | None,
        upsample_size: tuple[int, int] | None = None,
        start: int = 0,
        capture: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """``start`` resumes at a later layer (DeepCache's shallow steps); ``capture``
        receives the input of the last layer before its skip is concatenated."""
        last = len(self.resnets) - 1
        for i in range(start, last + 1):
            if capture is not None and i == last:
                capture.append(x)
            x = torch.cat([x, skips.pop()], dim=1)
            x = self._layer(i, x, temb, context)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x, upsample_size)
        return x


class MidBlock(_Block):
    """resnet, then (transformer, motion module, resnet) once."""

    def __init__(self, channels: int, use_motion_module: bool, output_scale_factor: float, cfg: dict[str, Any]):
        super().__init__()
        self.resnets = nn.ModuleList(
            [
                ResnetBlock3D(
                    channels,
                    channels,
                    cfg["temb_channels"],
                    cfg["groups"],
                    cfg["eps"],
                    output_scale_factor=output_scale_factor,
                    time_embedding_norm=cfg["time_scale_shift"],
                )
                for _ in range(2)
            ]
        )
        self.attentions = _attentions(1, channels, cfg, True)
        self.motion_modules = _motion(1, channels, cfg, use_motion_module)

    def forward(self, x: torch.Tensor, temb: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        x = self._run(self.resnets[0], x, temb)
        x = self._run(self.attentions[0], x, context)
        if self.motion_modules[0] is not None:
            x = self._run(self.motion_modules[0], x)
        return self._run(self.resnets[1], x, temb)
