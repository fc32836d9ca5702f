"""A job's parameters and their bounds, defined once: the service's request schema and
settings and the command line build their checks from ``PARAM_BOUNDS``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from latentsync_core.common.errors import CodedError

# name -> (min, max), both inclusive.
PARAM_BOUNDS: Mapping[str, tuple[int | float, int | float]] = MappingProxyType(
    {
        "inference_steps": (1, 200),
        "guidance_scale": (0.0, 20.0),
        "seed": (0, 2**63 - 1),  # any non-negative 64-bit integer
    }
)


class InvalidParameter(CodedError, ValueError):
    """A job parameter outside its bounds (the caller's input, hence a coded error)."""

    def __init__(self, message: str):
        super().__init__("INVALID_PARAMETER", message)


@dataclass(frozen=True)
class LipSyncParams:
    inference_steps: int = 20
    guidance_scale: float = 1.5  # classifier-free guidance; 1 or less turns it off
    seed: int = 1247
    enable_deepcache: bool = False

    def validate(self) -> None:
        for name, (low, high) in PARAM_BOUNDS.items():
            if not low <= getattr(self, name) <= high:
                raise InvalidParameter(f"{name} must be between {low} and {high}")
