"""Service settings from the environment and ``.env`` (prefix ``LATENTSYNC_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LATENTSYNC_", env_file=".env", extra="ignore")

    # Models
    weights: Literal["official", "demo"] = "official"
    checkpoint_dir: Path = ROOT / "checkpoints"
    unet_config: Path = ROOT / "configs" / "unet" / "stage2_512.yaml"
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    gpu_id: int = 0
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    # Speed
    compile: Literal["auto", "on", "off"] = "auto"  # torch.compile full windows; auto = on a GPU
    template_cache: bool = True  # reuse face detection + VAE encodes of a video seen before
    template_cache_max_gb: float = Field(4.0, gt=0)
    detect_workers: int = Field(0, ge=0)  # face-detection threads; 0 = all cores but one

    # Default job parameters
    inference_steps: int = Field(20, ge=1, le=200)
    guidance_scale: float = Field(1.5, ge=0.0, le=20.0)
    seed: int = Field(1247, ge=0)
    enable_deepcache: bool = False

    # Storage
    data_dir: Path = ROOT / "data"
    input_dirs: Annotated[list[Path], NoDecode] = Field(default_factory=list)  # folders JSON requests may read from
    result_ttl_s: int = Field(24 * 3600, ge=1)
    cleanup_interval_s: float = Field(60.0, gt=0)

    # Limits and protection
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_upload_mb: int = Field(500, ge=1)
    max_video_s: float = Field(600.0, gt=0)
    max_audio_s: float = Field(600.0, gt=0)
    max_queue: int = Field(32, ge=1)
    webhook_timeout_s: float = 10.0
    webhook_retries: int = 3
    warmup: bool = True

    @field_validator("input_dirs", "api_keys", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        # Accept "a,b" as well as JSON lists in the environment.
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [v.strip() for v in text.split(",") if v.strip()]
        return value

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    @property
    def template_cache_dir(self) -> Path:
        return self.cache_dir / "templates"

    @property
    def compile_cache_dir(self) -> Path:
        """Compiled kernels survive restarts here (a restart then compiles in seconds)."""
        return self.cache_dir / "inductor"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
