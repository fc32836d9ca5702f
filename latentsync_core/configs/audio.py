"""The mel spectrogram's configuration (``configs/audio.yaml``: SyncNet's audio input)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latentsync_core.configs.loader import CONFIG_DIR, merge_config, read_yaml


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


def load_audio_config(path: str | Path = CONFIG_DIR / "audio.yaml", overrides: Sequence[str] = ()) -> AudioConfig:
    path = Path(path)
    return merge_config(AudioConfig, read_yaml(path), str(path), overrides)
