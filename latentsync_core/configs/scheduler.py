"""The DDIM noise schedule's configuration (``configs/scheduler_config.json``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from latentsync_core.configs.loader import CONFIG_DIR, ConfigError, merge_config


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
    return merge_config(SchedulerConfig, OmegaConf.create(raw), str(path), overrides)
