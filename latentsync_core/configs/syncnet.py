"""Typed configuration of StableSyncNet (``configs/syncnet/*.yaml``).

Loaded like the UNet configs: merged onto dataclasses, so an unknown key or a wrong type
fails at load time naming the file and the key. The layout of each encoder is checked as
well (one downsample factor and one attention flag per block), because a mismatch there
would otherwise build a network whose keys silently differ from the checkpoint's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from latentsync_core.configs.loader import CONFIG_DIR, ConfigError, merge_config, read_yaml

SYNCNET_CONFIG_DIR = CONFIG_DIR / "syncnet"
DEFAULT_SYNCNET_CONFIG = SYNCNET_CONFIG_DIR / "syncnet_16_pixel_attn.yaml"  # the one LatentSync 1.6 uses


@dataclass
class SyncNetEncoderConfig:
    in_channels: int = 1
    block_out_channels: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    # Per block: an int (same stride on both axes), [h, w] strides, or 1 for no downsampling.
    downsample_factors: list[Any] = field(default_factory=lambda: [2, 2, 2, 2])
    # Per block: 1 adds a self-attention block after the residual block. Empty means none
    # (syncnet_25_pixel.yaml has no such key; upstream's model cannot build it without one).
    attn_blocks: list[int] = field(default_factory=list)
    dropout: float = 0.0


@dataclass
class SyncNetModelConfig:
    audio_encoder: SyncNetEncoderConfig = field(default_factory=SyncNetEncoderConfig)
    visual_encoder: SyncNetEncoderConfig = field(default_factory=lambda: SyncNetEncoderConfig(in_channels=48))


@dataclass
class SyncNetCkptConfig:
    resume_ckpt_path: str = ""
    inference_ckpt_path: str = ""
    save_ckpt_steps: int = 2500


@dataclass
class SyncNetDataConfig:
    train_output_dir: str = "debug/syncnet"
    num_val_samples: int = 2048
    batch_size: int = 256
    gradient_accumulation_steps: int = 1
    num_workers: int = 12
    latent_space: bool = False  # true: the visual encoder reads VAE latents, not pixels
    num_frames: int = 16
    resolution: int = 256
    train_fileslist: str = ""
    train_data_dir: str = ""
    val_fileslist: str = ""
    val_data_dir: str = ""
    audio_mel_cache_dir: str = ""
    lower_half: bool = True  # only the mouth half of each aligned face
    audio_sample_rate: int = 16000
    video_fps: int = 25
    # Decoded clips kept per data loader process (LRU); not in upstream's configs. Worth it
    # when the clips fit (a 5 s clip at 256 px is 24 MB): small fine-tuning sets.
    frame_cache_mb: int = 0


@dataclass
class SyncNetOptimizerConfig:
    lr: float = 1e-5
    max_grad_norm: float = 1.0


@dataclass
class SyncNetRunConfig:
    max_train_steps: int = 10_000_000
    validation_steps: int = 2500
    mixed_precision_training: bool = True
    seed: int = 42


@dataclass
class SyncNetConfig:
    model: SyncNetModelConfig = field(default_factory=SyncNetModelConfig)
    ckpt: SyncNetCkptConfig = field(default_factory=SyncNetCkptConfig)
    data: SyncNetDataConfig = field(default_factory=SyncNetDataConfig)
    optimizer: SyncNetOptimizerConfig = field(default_factory=SyncNetOptimizerConfig)
    run: SyncNetRunConfig = field(default_factory=SyncNetRunConfig)


def _check_encoder(name: str, enc: SyncNetEncoderConfig, origin: str) -> None:
    blocks = len(enc.block_out_channels)
    if blocks == 0:
        raise ConfigError(f"{origin}: model.{name}.block_out_channels is empty")
    if len(enc.downsample_factors) != blocks:
        raise ConfigError(
            f"{origin}: model.{name}.downsample_factors has {len(enc.downsample_factors)} entries for {blocks} blocks"
        )
    for factor in enc.downsample_factors:
        ok_int = isinstance(factor, int) and factor >= 1
        ok_pair = isinstance(factor, list) and len(factor) == 2 and all(isinstance(f, int) and f >= 1 for f in factor)
        if not (ok_int or ok_pair):
            raise ConfigError(f"{origin}: model.{name}.downsample_factors: {factor!r} is not an int or [h, w]")
    if not enc.attn_blocks:
        enc.attn_blocks = [0] * blocks
    if len(enc.attn_blocks) != blocks or any(a not in (0, 1) for a in enc.attn_blocks):
        raise ConfigError(f"{origin}: model.{name}.attn_blocks must be {blocks} flags of 0 or 1, got {enc.attn_blocks}")


def _checked(model: SyncNetModelConfig, origin: str) -> SyncNetModelConfig:
    _check_encoder("audio_encoder", model.audio_encoder, origin)
    _check_encoder("visual_encoder", model.visual_encoder, origin)
    return model


def load_syncnet_config(path: str | Path = DEFAULT_SYNCNET_CONFIG, overrides: Sequence[str] = ()) -> SyncNetConfig:
    """Load a ``configs/syncnet/*.yaml`` file; unknown keys and malformed layouts are errors."""
    path = Path(path)
    config: SyncNetConfig = merge_config(SyncNetConfig, read_yaml(path), str(path), overrides)
    _checked(config.model, str(path))
    return config


def load_syncnet_model_section(section: Any, origin: str = "<dict>") -> SyncNetModelConfig:
    """Validate a bare ``model:`` section (a dict, e.g. from a test vector, or the dataclass)."""
    if isinstance(section, SyncNetModelConfig):
        return _checked(section, origin)
    if not isinstance(section, dict):
        raise ConfigError(f"{origin}: a syncnet model section must be a mapping, got {type(section).__name__}")
    return _checked(merge_config(SyncNetModelConfig, OmegaConf.create(section), origin, ()), origin)
