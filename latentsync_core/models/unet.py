"""The LatentSync UNet3D: an SD 1.5 UNet inflated to video, conditioned on audio tokens."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from latentsync_core.configs.loader import to_dict
from latentsync_core.configs.unet import UNetModelConfig, load_model_section
from latentsync_core.models.blocks import DownBlock, MidBlock, UpBlock, _Block
from latentsync_core.models.norm import GroupNorm
from latentsync_core.models.resnet import InflatedConv3d

FullFn = Callable[..., tuple[torch.Tensor, torch.Tensor | None]]
ShallowFn = Callable[..., torch.Tensor]

DEEPCACHE_INTERVAL = 3  # DeepCache: a full pass every 3rd denoising step (upstream's setting)


@dataclass
class UNetOutput:
    sample: torch.Tensor


class DeepCacheState:
    """DeepCache for one window's denoising loop, and the one place that decides between
    a full and a shallow step: steps 0, interval, 2*interval, ... run the whole network
    and keep its deep feature; the others reuse it (``UNet3DConditionModel.forward_shallow``).
    An interval of 1 runs every step in full (DeepCache off)."""

    def __init__(self, interval: int = DEEPCACHE_INTERVAL):
        if interval < 1:
            raise ValueError("DeepCache interval must be >= 1")
        self.interval = interval
        self.step_index = 0
        self.feature: torch.Tensor | None = None

    def is_full_step(self, k: int) -> bool:
        return k % self.interval == 0

    def full_steps(self, steps: int) -> int:
        """How many of ``steps`` denoising steps run the whole network."""
        return sum(self.is_full_step(k) for k in range(steps))

    def step(self, full: FullFn, shallow: ShallowFn, *inputs: torch.Tensor) -> torch.Tensor:
        """One denoising step's noise prediction, through ``full(*inputs) -> (prediction,
        feature)`` or ``shallow(*inputs, feature)``."""
        if self.feature is None or self.is_full_step(self.step_index):
            prediction, feature = full(*inputs)
            if self.interval > 1:
                self.feature = feature
        else:
            prediction = shallow(*inputs, self.feature)
        self.step_index += 1
        return prediction


def timestep_embedding(timesteps: torch.Tensor, dim: int, flip_sin_to_cos: bool, freq_shift: float) -> torch.Tensor:
    """Sinusoidal timestep features in float32 (as diffusers' ``Timesteps``)."""
    half = dim // 2
    exponent = -math.log(10000) * torch.arange(half, dtype=torch.float32, device=timesteps.device)
    freqs = torch.exp(exponent / (half - freq_shift))
    args = timesteps[:, None].float() * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1))
    return emb


class TimestepEmbedding(nn.Module):
    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(x)))


class UNet3DConditionModel(nn.Module):
    """Input (b, 13, f, h, w) = noisy latents, mask, masked-image latents, reference latents;
    output (b, 4, f, h, w) noise prediction. ``encoder_hidden_states`` is ((b f), tokens, dim)
    or (b, f, tokens, dim) audio features."""

    def __init__(self, config: UNetModelConfig):
        super().__init__()
        self.config = config
        c = config
        if c.act_fn != "silu":
            raise ValueError(f"act_fn={c.act_fn!r} is not supported (only 'silu')")
        if c.mid_block_type != "UNetMidBlock3DCrossAttn":
            raise ValueError(f"mid_block_type={c.mid_block_type!r} is not supported")
        channels = list(c.block_out_channels)
        temb_channels = channels[0] * 4
        shared = {
            "temb_channels": temb_channels,
            "groups": c.norm_num_groups,
            "eps": c.norm_eps,
            "time_scale_shift": c.resnet_time_scale_shift,
            "downsample_padding": c.downsample_padding,
            "attention_heads": c.attention_head_dim,  # upstream passes this number as the head count
            "cross_attention_dim": c.cross_attention_dim,
            "add_audio_layer": c.add_audio_layer,
            "motion_type": c.motion_module_type,
            "motion_kwargs": to_dict(c.motion_module_kwargs),
        }
        self.conv_in = InflatedConv3d(c.in_channels, channels[0], kernel_size=3, padding=1)
        self.time_embedding = TimestepEmbedding(channels[0], temb_channels)

        self.down_blocks = nn.ModuleList()
        out_ch = channels[0]
        for i, kind in enumerate(c.down_block_types):
            in_ch, out_ch = out_ch, channels[i]
            self.down_blocks.append(
                DownBlock(
                    in_ch,
                    out_ch,
                    c.layers_per_block,
                    add_downsample=i < len(channels) - 1,
                    cross_attention=_cross_attention(kind, "Down"),
                    use_motion_module=c.use_motion_module
                    and (2**i in c.motion_module_resolutions)
                    and not c.motion_module_decoder_only,
                    cfg=shared,
                )
            )
        self.mid_block = MidBlock(
            channels[-1], c.use_motion_module and c.motion_module_mid_block, c.mid_block_scale_factor, shared
        )
        self.up_blocks = nn.ModuleList()
        rev = list(reversed(channels))
        out_ch = rev[0]
        for i, kind in enumerate(c.up_block_types):
            prev, out_ch = out_ch, rev[i]
            self.up_blocks.append(
                UpBlock(
                    rev[min(i + 1, len(channels) - 1)],
                    prev,
                    out_ch,
                    c.layers_per_block + 1,
                    add_upsample=i < len(channels) - 1,
                    cross_attention=_cross_attention(kind, "Up"),
                    use_motion_module=c.use_motion_module and (2 ** (3 - i) in c.motion_module_resolutions),
                    cfg=shared,
                )
            )
        self.conv_norm_out = GroupNorm(c.norm_num_groups, channels[0], eps=c.norm_eps)
        self.conv_out = InflatedConv3d(channels[0], c.out_channels, kernel_size=3, padding=1)
        self.max_window_frames = (
            c.motion_module_kwargs.temporal_position_encoding_max_len if c.use_motion_module else None
        )

    @classmethod
    def from_config(cls, config: UNetModelConfig | dict[str, Any]) -> UNet3DConditionModel:
        if isinstance(config, dict):
            config = load_model_section(config)
        return cls(config)

    @property
    def dtype(self) -> torch.dtype:
        return self.conv_in.weight.dtype

    def enable_gradient_checkpointing(self, enabled: bool = True) -> None:
        for module in self.modules():
            if isinstance(module, _Block):
                module.gradient_checkpointing = enabled

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor | None = None,
        return_dict: bool = True,
        deep_cache: DeepCacheState | None = None,
    ) -> UNetOutput | tuple[torch.Tensor]:
        """With ``deep_cache``, the state picks the step: a full one runs the whole network
        and keeps the deep features; the others recompute only ``conv_in`` and the last
        layer of the last up block on top of them (DeepCache with branch 0, as upstream's
        option)."""
        if deep_cache is None:
            x, _ = self.forward_full(sample, timestep, encoder_hidden_states)
        else:
            full = functools.partial(self.forward_full, capture=True)
            x = deep_cache.step(full, self.forward_shallow, sample, timestep, encoder_hidden_states)
        return UNetOutput(sample=x) if return_dict else (x,)

    def forward_full(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor | None,
        capture: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The whole network. With ``capture``, also returns the input of the last layer of
        the last up block (DeepCache's cached feature). Tensors in, tensors out, so that it
        compiles as one graph."""
        sample, temb = self._prepare(sample, timestep)
        # Sizes that are not multiples of the total downsampling force explicit upsample sizes.
        factor = 2 ** (len(self.up_blocks) - 1)
        forward_size = any(s % factor != 0 for s in sample.shape[-2:])
        x = self.conv_in(sample)
        skips: list[torch.Tensor] = [x]
        for block in self.down_blocks:
            x, block_skips = block(x, temb, encoder_hidden_states)
            skips.extend(block_skips)
        x = self.mid_block(x, temb, encoder_hidden_states)
        feature: torch.Tensor | None = None
        for i, block in enumerate(self.up_blocks):
            n = len(block.resnets)
            block_skips, skips = skips[-n:], skips[:-n]
            size = tuple(skips[-1].shape[-2:]) if forward_size and i < len(self.up_blocks) - 1 else None
            grab: list[torch.Tensor] | None = [] if capture and i == len(self.up_blocks) - 1 else None
            x = block(x, block_skips, temb, encoder_hidden_states, size, capture=grab)
            if grab:
                feature = grab[0]
        return self.conv_out(F.silu(self.conv_norm_out(x))), feature

    def forward_shallow(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor | None,
        feature: torch.Tensor,
    ) -> torch.Tensor:
        """A DeepCache step: ``conv_in`` and the last up layer on top of the cached feature."""
        sample, temb = self._prepare(sample, timestep)
        x = self.conv_in(sample)
        last = self.up_blocks[-1]
        x = last(feature, [x], temb, encoder_hidden_states, None, start=len(last.resnets) - 1)
        return self.conv_out(F.silu(self.conv_norm_out(x)))

    def _prepare(self, sample: torch.Tensor, timestep: torch.Tensor | float | int) -> tuple[torch.Tensor, torch.Tensor]:
        if sample.dim() != 5:
            raise ValueError(f"sample must be (batch, channels, frames, height, width), got {tuple(sample.shape)}")
        frames = sample.shape[2]
        if self.max_window_frames is not None and frames > self.max_window_frames:
            raise ValueError(f"a window holds at most {self.max_window_frames} frames, got {frames}")
        if self.config.center_input_sample:
            sample = 2 * sample - 1.0
        t = timestep if torch.is_tensor(timestep) else torch.tensor([timestep], device=sample.device)
        t = t.to(sample.device).reshape(-1).expand(sample.shape[0])
        t_emb = timestep_embedding(
            t, self.config.block_out_channels[0], self.config.flip_sin_to_cos, self.config.freq_shift
        )
        return sample, self.time_embedding(t_emb.to(self.dtype))


def _cross_attention(kind: str, direction: str) -> bool:
    known = {f"CrossAttn{direction}Block3D": True, f"{direction}Block3D": False}
    if kind not in known:
        raise ValueError(f"{direction.lower()} block type {kind!r} is not supported (expected one of {sorted(known)})")
    return known[kind]
