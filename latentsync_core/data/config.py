"""Typed configuration of the preprocessing pipeline (``configs/data/preprocess.yaml``).

Loaded like the model configs: merged onto a dataclass, so an unknown key or a wrong type
fails at load time naming the file and the key. Values are range-checked here as well,
because a bad threshold would otherwise only show as an empty training set hours later.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from latentsync_core.configs.loader import CONFIG_DIR, ConfigError, merge_config, read_yaml

DEFAULT_PREPROCESS_CONFIG = CONFIG_DIR / "data" / "preprocess.yaml"
REPO_CHECKPOINTS = CONFIG_DIR.parent / "checkpoints"
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".flv", ".mpg", ".mpeg", ".ts", ".wmv")

# Keys that only say how the work is run, not what it produces: a resumed run may change them.
EXECUTION_KEYS = frozenset(
    {"engine", "workers", "gpus", "ray_address", "max_pending_segments", "keep_intermediate", "val_fraction"}
)


@dataclass
class PreprocessConfig:
    resolution: int = 256
    segment_seconds: float = 5.0
    min_segment_seconds: float = 2.0
    shot_threshold: float = 2.0
    shot_min_content: float = 15.0
    shot_min_frames: int = 15
    shot_detect_width: int = 256
    min_face_size: int = 128
    max_missing_face_ratio: float = 0.0
    max_face_jump: float = 0.5
    max_face_scale_jump: float = 1.5
    face_detect_threads: int = 0
    sync_conf_threshold: float = 3.0
    max_offset: int = 6
    sync_vshift: int = 15
    quality_model: str = "auto"
    hyperiqa_threshold: float = 40.0
    min_sharpness: float = 8.0
    min_brightness: float = 40.0
    max_brightness: float = 220.0
    min_contrast: float = 20.0
    video_crf: int = 18
    video_preset: str = "ultrafast"
    val_fraction: float = 0.05
    keep_intermediate: bool = False
    engine: str = "local"
    workers: int = 0
    gpus: str = "all"
    ray_address: str = ""
    max_pending_segments: int = 64
    checkpoint_dir: str = ""
    video_extensions: list[str] = field(default_factory=lambda: list(VIDEO_EXTENSIONS))

    # --- derived values ----------------------------------------------------------------------
    @property
    def segment_frames(self) -> int:
        return round(self.segment_seconds * 25)

    @property
    def min_segment_frames(self) -> int:
        return round(self.min_segment_seconds * 25)

    def worker_count(self) -> int:
        return self.workers if self.workers > 0 else max(1, os.cpu_count() or 1)

    def checkpoints(self) -> Path:
        if self.checkpoint_dir:
            return Path(self.checkpoint_dir)
        env = os.environ.get("LATENTSYNC_CHECKPOINT_DIR")
        return Path(env) if env else REPO_CHECKPOINTS

    def fingerprint(self) -> str:
        """Hash of every key that changes the output; a resumed run must match it."""
        relevant = {k: v for k, v in asdict(self).items() if k not in EXECUTION_KEYS}
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check(cfg: PreprocessConfig, origin: str) -> PreprocessConfig:
    problems: list[str] = []

    def need(ok: bool, message: str) -> None:
        if not ok:
            problems.append(message)

    need(cfg.resolution in (256, 512), f"resolution must be 256 or 512, got {cfg.resolution}")
    need(cfg.segment_seconds >= 0.4, f"segment_seconds must be >= 0.4 (10 frames), got {cfg.segment_seconds}")
    need(
        0.24 < cfg.min_segment_seconds <= cfg.segment_seconds,
        f"min_segment_seconds must be in (0.24, segment_seconds], got {cfg.min_segment_seconds}",
    )
    need(cfg.shot_threshold > 0, "shot_threshold must be > 0")
    need(cfg.shot_min_frames >= 1, "shot_min_frames must be >= 1")
    need(cfg.shot_detect_width >= 32, "shot_detect_width must be >= 32")
    need(cfg.min_face_size >= 0, "min_face_size must be >= 0")
    need(0.0 <= cfg.max_missing_face_ratio < 1.0, "max_missing_face_ratio must be in [0, 1)")
    need(cfg.max_face_jump > 0 and cfg.max_face_scale_jump >= 1.0, "max_face_jump > 0, max_face_scale_jump >= 1")
    need(cfg.face_detect_threads >= 0, "face_detect_threads must be >= 0")
    need(cfg.sync_vshift >= 1, "sync_vshift must be >= 1")
    need(0 <= cfg.max_offset <= cfg.sync_vshift, f"max_offset must be in [0, sync_vshift={cfg.sync_vshift}]")
    need(cfg.quality_model in ("auto", "embedded", "hyperiqa"), "quality_model must be auto, embedded or hyperiqa")
    need(0 <= cfg.min_brightness <= cfg.max_brightness <= 255, "need 0 <= min_brightness <= max_brightness <= 255")
    need(0 <= cfg.video_crf <= 51, "video_crf must be in [0, 51]")
    need(0.0 <= cfg.val_fraction < 1.0, "val_fraction must be in [0, 1)")
    need(cfg.engine in ("local", "ray"), f"engine must be local or ray, got {cfg.engine!r}")
    need(cfg.workers >= 0, "workers must be >= 0")
    need(cfg.max_pending_segments >= 1, "max_pending_segments must be >= 1")
    try:
        parse_gpus(cfg.gpus)
    except ValueError as exc:
        problems.append(str(exc))
    need(
        all(e.startswith(".") for e in cfg.video_extensions),
        "video_extensions must start with a dot",
    )
    if problems:
        raise ConfigError(f"{origin}: " + "; ".join(problems))
    cfg.video_extensions = [e.lower() for e in cfg.video_extensions]
    return cfg


def parse_gpus(spec: str) -> list[int] | None:
    """``all`` -> None (every visible GPU), ``none``/``cpu``/empty -> [], ``0,1`` -> [0, 1]."""
    text = str(spec).strip().lower()
    if text == "all":
        return None
    if text in ("", "none", "cpu"):
        return []
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"gpus must be all, none or indices such as 0,1; got {spec!r}") from None
    if not ids or any(i < 0 for i in ids) or len(set(ids)) != len(ids):
        raise ValueError(f"gpus must be all, none or distinct indices such as 0,1; got {spec!r}")
    return ids


def load_preprocess_config(
    path: str | Path | None = DEFAULT_PREPROCESS_CONFIG,
    overrides: Sequence[str] = (),
    values: Mapping[str, Any] | None = None,
) -> PreprocessConfig:
    """The config of ``path`` (None: the defaults), then ``key=value`` overrides, then typed
    ``values`` (from command-line flags; None entries are ignored). Unknown keys are errors."""
    origin = str(path) if path is not None else "<defaults>"
    if path is not None:
        config: PreprocessConfig = merge_config(PreprocessConfig, read_yaml(Path(path)), origin, overrides)
    else:
        from omegaconf import OmegaConf

        config = merge_config(PreprocessConfig, OmegaConf.create({}), origin, overrides)
    if values:
        known = {f.name for f in fields(PreprocessConfig)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown preprocess option(s): {', '.join(unknown)}")
        config = replace(config, **{k: v for k, v in values.items() if v is not None})
    return _check(config, origin)
