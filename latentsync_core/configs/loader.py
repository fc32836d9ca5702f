"""Loading configuration files into validated dataclasses (every config module uses this).

Every file is merged with OmegaConf onto a structured schema, so a wrong type or an unknown
key fails at load time with an error naming the file and the key instead of surfacing later
as a shape mismatch deep inside the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

CONFIG_DIR = Path(__file__).resolve().parent.parent.parent / "configs"


class ConfigError(ValueError):
    """A configuration file or override is invalid."""


def merge_config(schema: type, source: DictConfig, origin: str, overrides: Sequence[str]) -> Any:
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


def read_yaml(path: Path) -> DictConfig:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        loaded = OmegaConf.load(path)
    except Exception as exc:  # yaml errors have many types
        raise ConfigError(f"{path}: not valid YAML: {_first_line(exc)}") from exc
    if isinstance(loaded, ListConfig):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return loaded


def to_dict(config: Any) -> dict[str, Any]:
    """A plain ``dict`` of a config dataclass (for from_config and JSON)."""
    return OmegaConf.to_container(OmegaConf.structured(config), resolve=True)  # type: ignore[return-value]
