"""Typed configuration of the UNet: its architecture (``model:``) and its training run
(``data:``, ``ckpt:``, ``run:``, ``optimizer:``), from ``configs/unet/*.yaml``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from latentsync_core.configs.loader import merge_config, read_yaml


@dataclass
class MotionModuleKwargs:
    num_attention_heads: int = 8
    num_transformer_block: int = 1
    attention_block_types: list[str] = field(default_factory=lambda: ["Temporal_Self", "Temporal_Self"])
    temporal_position_encoding: bool = True
    temporal_position_encoding_max_len: int = 24
    temporal_attention_dim_div: int = 1
    zero_initialize: bool = True


@dataclass
class UNetModelConfig:
    act_fn: str = "silu"
    add_audio_layer: bool = True
    attention_head_dim: int = 8
    block_out_channels: list[int] = field(default_factory=lambda: [320, 640, 1280, 1280])
    center_input_sample: bool = False
    cross_attention_dim: int = 384
    down_block_types: list[str] = field(default_factory=lambda: ["CrossAttnDownBlock3D"] * 3 + ["DownBlock3D"])
    mid_block_type: str = "UNetMidBlock3DCrossAttn"
    up_block_types: list[str] = field(default_factory=lambda: ["UpBlock3D"] + ["CrossAttnUpBlock3D"] * 3)
    downsample_padding: int = 1
    flip_sin_to_cos: bool = True
    freq_shift: int = 0
    in_channels: int = 13
    layers_per_block: int = 2
    mid_block_scale_factor: float = 1.0
    norm_eps: float = 1e-5
    norm_num_groups: int = 32
    out_channels: int = 4
    sample_size: int = 64
    resnet_time_scale_shift: str = "default"
    use_motion_module: bool = True
    motion_module_resolutions: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    motion_module_mid_block: bool = False
    motion_module_decoder_only: bool = False
    motion_module_type: str = "Vanilla"
    motion_module_kwargs: MotionModuleKwargs = field(default_factory=MotionModuleKwargs)


@dataclass
class DataConfig:
    syncnet_config_path: str = ""
    train_output_dir: str = ""
    train_fileslist: str = ""
    train_data_dir: str = ""
    audio_embeds_cache_dir: str = ""
    audio_mel_cache_dir: str = ""
    val_video_path: str = ""
    val_audio_path: str = ""
    batch_size: int = 1
    num_workers: int = 12
    num_frames: int = 16
    resolution: int = 512
    mask_image_path: str = ""
    audio_sample_rate: int = 16000
    video_fps: int = 25
    audio_feat_length: list[int] = field(default_factory=lambda: [2, 2])


@dataclass
class CkptConfig:
    resume_ckpt_path: str = ""  # the UNet a run starts from (fine-tune); "" = random init (stage 1)
    save_ckpt_steps: int = 10000
    keep_last: int = 3  # training states kept besides the best by validation LSE-C
    # Loss networks, loaded only when their weight is > 0 (relative paths: from the working directory).
    lpips_path: str = "checkpoints/auxiliary/lpips_vgg16.pt"
    trepa_path: str = "checkpoints/auxiliary/vit_g_hybrid_pt_1200e_ssv2_ft.pth"  # upstream's name (trepa.py)


@dataclass
class RunConfig:
    pixel_space_supervise: bool = True
    use_syncnet: bool = True
    sync_loss_weight: float = 0.05
    perceptual_loss_weight: float = 0.1
    recon_loss_weight: float = 1.0
    guidance_scale: float = 1.5
    trepa_loss_weight: float = 10.0
    inference_steps: int = 20
    trainable_modules: list[str] = field(default_factory=list)
    seed: int = 1247
    use_mixed_noise: bool = True
    mixed_noise_alpha: float = 1.0
    mixed_precision_training: bool = True
    enable_gradient_checkpointing: bool = True
    max_train_steps: int = 10_000_000
    max_train_epochs: int = -1
    # Memory levers (training only).
    mixed_precision_dtype: str = "float16"  # autocast dtype when mixed_precision_training: float16 | bfloat16
    vae_gradient_checkpointing: bool = True  # recompute the VAE decoder in the backward pass
    vae_decode_chunk_frames: int = 0  # decode the x0 estimate this many frames at a time (0: all at once)
    validation_steps: int = 0  # validate every N steps (0: at each checkpoint save)
    num_val_clips: int = 2  # held-out clips lip-synced and scored per validation


@dataclass
class OptimizerConfig:
    lr: float = 1e-5
    scale_lr: bool = False
    max_grad_norm: float = 1.0
    lr_scheduler: str = "constant"
    lr_warmup_steps: int = 0
    adam_epsilon: float = 1e-8
    weight_decay: float = 1e-2  # AdamW's default, as upstream


@dataclass
class UNetConfig:
    data: DataConfig = field(default_factory=DataConfig)
    ckpt: CkptConfig = field(default_factory=CkptConfig)
    run: RunConfig = field(default_factory=RunConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    model: UNetModelConfig = field(default_factory=UNetModelConfig)


def load_unet_config(path: str | Path, overrides: Sequence[str] = ()) -> UNetConfig:
    """Load a ``configs/unet/*.yaml`` file, with overrides such as ``model.cross_attention_dim=768``."""
    path = Path(path)
    return merge_config(UNetConfig, read_yaml(path), str(path), overrides)


def load_model_section(section: dict[str, Any], origin: str = "<dict>") -> UNetModelConfig:
    """Validate a bare ``model:`` section (for example from a checkpoint or a test vector)."""
    return merge_config(UNetModelConfig, OmegaConf.create(section), origin, ())
