"""Typed configuration: YAML files loaded with OmegaConf into validated dataclasses.

Every file is merged onto a structured schema, so a wrong type or an unknown key fails
at load time with an error naming the file and the key instead of surfacing later as a
shape mismatch deep inside the model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


class ConfigError(ValueError):
    """A configuration file or override is invalid."""


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


@dataclass
class SchedulerConfig:
    beta_start: float = 0.00085
    beta_end: float = 0.012
    beta_schedule: str = "scaled_linear"
    clip_sample: bool = False
    num_train_timesteps: int = 1000
    set_alpha_to_one: bool = False
    steps_offset: int = 1
    trained_betas: Any = None
    skip_prk_steps: bool = True


@dataclass
class AudioMelConfig:
    num_mels: int = 80
    rescale: bool = True
    rescaling_max: float = 0.9
    use_lws: bool = False
    n_fft: int = 800
    hop_size: int = 200
    win_size: int = 800
    sample_rate: int = 16000
    frame_shift_ms: Any = None
    signal_normalization: bool = True
    allow_clipping_in_normalization: bool = True
    symmetric_mels: bool = True
    max_abs_value: float = 4.0
    preemphasize: bool = True
    preemphasis: float = 0.97
    min_level_db: float = -100
    ref_level_db: float = 20
    fmin: float = 55
    fmax: float = 7600


@dataclass
class AudioConfig:
    audio: AudioMelConfig = field(default_factory=AudioMelConfig)


def _merge(schema: type, source: DictConfig, origin: str, overrides: Sequence[str]) -> Any:
    """Merge ``source`` and dotted ``key=value`` overrides onto ``schema``; return the dataclass."""
    base = OmegaConf.structured(schema)
    try:
        merged = OmegaConf.merge(base, source)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{origin}: invalid key '{_key_of(exc)}': {_first_line(exc)}") from exc
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        key, raw = item.split("=", 1)
        try:
            merged = OmegaConf.merge(merged, OmegaConf.from_dotlist([f"{key.strip()}={raw}"]))
        except OmegaConfBaseException as exc:
            raise ConfigError(f"override '{item}' (on {origin}): invalid key '{key}': {_first_line(exc)}") from exc
    return OmegaConf.to_object(merged)


def _key_of(exc: OmegaConfBaseException) -> str:
    return str(getattr(exc, "full_key", None) or getattr(exc, "key", None) or "?")


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _read_yaml(path: Path) -> DictConfig:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        loaded = OmegaConf.load(path)
    except Exception as exc:  # yaml errors have many types
        raise ConfigError(f"{path}: not valid YAML: {_first_line(exc)}") from exc
    if isinstance(loaded, ListConfig):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return loaded


def load_unet_config(path: str | Path, overrides: Sequence[str] = ()) -> UNetConfig:
    """Load a ``configs/unet/*.yaml`` file, with overrides such as ``model.cross_attention_dim=768``."""
    path = Path(path)
    return _merge(UNetConfig, _read_yaml(path), str(path), overrides)


def load_model_section(section: dict[str, Any], origin: str = "<dict>") -> UNetModelConfig:
    """Validate a bare ``model:`` section (for example from a checkpoint or a test vector)."""
    return _merge(UNetModelConfig, OmegaConf.create(section), origin, ())


def load_audio_config(path: str | Path = CONFIG_DIR / "audio.yaml", overrides: Sequence[str] = ()) -> AudioConfig:
    path = Path(path)
    return _merge(AudioConfig, _read_yaml(path), str(path), overrides)


def load_scheduler_config(
    path: str | Path = CONFIG_DIR / "scheduler_config.json", overrides: Sequence[str] = ()
) -> SchedulerConfig:
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from exc
    raw = {k: v for k, v in raw.items() if not k.startswith("_")}  # diffusers metadata keys
    return _merge(SchedulerConfig, OmegaConf.create(raw), str(path), overrides)


def to_dict(config: Any) -> dict[str, Any]:
    """A plain ``dict`` of a config dataclass (for from_config and JSON)."""
    return OmegaConf.to_container(OmegaConf.structured(config), resolve=True)  # type: ignore[return-value]
