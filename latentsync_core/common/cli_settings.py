"""The deployment's settings as the library's commands see them.

Every command resolves a value the same way: its flag, else ``LATENTSYNC_<NAME>`` in the
environment, else that name in ``.env`` (the working folder's), else the default. ``latentsync``
hands the library's commands the service's ``Settings`` (``server/settings.py``, the one
definition of every setting); a library command run on its own
(``python -m latentsync_core.<package>.cli``) reads the few settings it needs here, with the
same names, sources and defaults, since the library never imports the service.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Protocol

from latentsync_core.common.errors import CodedError
from latentsync_core.configs.loader import CONFIG_DIR
from latentsync_core.inference.params import LipSyncParams

PREFIX = "LATENTSYNC_"
ENV_FILE = ".env"
REPO_ROOT = CONFIG_DIR.parent
_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}


class SettingsInvalid(CodedError):
    """A setting's value cannot be used (``SETTINGS_INVALID``): the command stops before any work."""

    def __init__(self, message: str) -> None:
        super().__init__("SETTINGS_INVALID", message)


class CommandSettings(Protocol):
    """What the library's commands read from the deployment's settings."""

    @property
    def weights(self) -> str: ...  # "official" or "demo"

    @property
    def checkpoint_dir(self) -> Path: ...

    @property
    def cache_dir(self) -> Path: ...  # the demo weights are built here once

    @property
    def unet_config(self) -> Path: ...

    @property
    def device(self) -> str: ...  # "auto", "cpu", "cuda", "cuda:N"

    @property
    def dtype(self) -> str: ...  # "auto", "float32", "float16", "bfloat16"

    @property
    def detect_workers(self) -> int: ...  # 0: all cores but one

    @property
    def inference_steps(self) -> int: ...

    @property
    def guidance_scale(self) -> float: ...

    @property
    def seed(self) -> int: ...

    @property
    def enable_deepcache(self) -> bool: ...


_CHOICES = {
    "weights": ("official", "demo"),
    "dtype": ("auto", "float32", "float16", "bfloat16"),
}


@dataclass(frozen=True)
class LibrarySettings:
    """The settings of :class:`CommandSettings`, with the service's defaults (a test holds
    them equal to ``server.settings.Settings``)."""

    weights: str = "official"
    checkpoint_dir: Path = REPO_ROOT / "checkpoints"
    data_dir: Path = REPO_ROOT / "data"
    unet_config: Path = CONFIG_DIR / "unet" / "stage2_512.yaml"
    device: str = "auto"
    dtype: str = "auto"
    detect_workers: int = 0
    inference_steps: int = LipSyncParams.inference_steps
    guidance_scale: float = LipSyncParams.guidance_scale
    seed: int = LipSyncParams.seed
    enable_deepcache: bool = LipSyncParams.enable_deepcache

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"


def read_dotenv(path: str | Path = ENV_FILE) -> dict[str, str]:
    """``LATENTSYNC_*`` entries of a ``.env`` file, names upper-cased (none when it is absent)."""
    from dotenv import dotenv_values

    if not Path(path).is_file():
        return {}
    return {k.upper(): v for k, v in dotenv_values(path).items() if v is not None and k.upper().startswith(PREFIX)}


def _convert(name: str, text: str, default: object) -> object:
    """``text`` as the type of ``default`` (bool, Path, int, float or str)."""
    value = text.strip()
    try:
        if isinstance(default, bool):
            if value.lower() not in _TRUE | _FALSE:
                raise ValueError("expected true or false")
            return value.lower() in _TRUE
        if isinstance(default, Path):
            return Path(value)
        converted = type(default)(value)
    except ValueError as exc:
        raise SettingsInvalid(f"{PREFIX}{name.upper()}={text!r}: {exc}") from exc
    choices = _CHOICES.get(name)
    if choices and converted not in choices:
        raise SettingsInvalid(f"{PREFIX}{name.upper()} must be one of {', '.join(choices)}, got {text!r}")
    return converted


def read_settings(environ: Mapping[str, str] | None = None, env_file: str | Path | None = ENV_FILE) -> LibrarySettings:
    """The environment beats ``env_file``, which beats the defaults (names as the service spells them)."""
    env = {k.upper(): v for k, v in (os.environ if environ is None else environ).items()}
    dotenv = read_dotenv(env_file) if env_file is not None else {}
    values: dict[str, object] = {}
    defaults = LibrarySettings()
    for f in fields(LibrarySettings):
        key = f"{PREFIX}{f.name.upper()}"
        text = env.get(key, dotenv.get(key))
        if text is not None:
            values[f.name] = _convert(f.name, text, getattr(defaults, f.name))
    return LibrarySettings(**values)  # type: ignore[arg-type]


def device_or_none(settings: CommandSettings) -> str | None:
    """The device setting as the library's functions take it: None picks a GPU when there is one."""
    return None if settings.device == "auto" else settings.device
