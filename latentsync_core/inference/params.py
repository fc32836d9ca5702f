"""A job's parameters and their bounds, defined once: the service's request schema and
settings and the command line build their checks from ``PARAM_BOUNDS``, ``SAMPLERS`` and
``QUALITIES``.

Samplers (``samplers.py`` builds them): ``ddim`` is upstream's path and the default;
``dpmpp_2m`` (DPM-Solver++ 2M) and ``unipc`` are multistep solvers meant for fewer steps
(recommended: 10, ``RECOMMENDED_STEPS``). ``inference_steps`` is used as given whatever the
sampler. The ``quality`` preset fills in parameters the request leaves unset
(``apply_quality``): ``exact`` changes nothing; ``fast`` is DeepCache + ``dpmpp_2m`` at 10
steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from types import MappingProxyType
from typing import Any

from latentsync_core.common.errors import CodedError
from latentsync_core.inference.face_selection import parse_face
from latentsync_core.inference.length_modes import DEFAULT_SYNC_MODE, check_sync_mode

# name -> (min, max), both inclusive.
PARAM_BOUNDS: Mapping[str, tuple[int | float, int | float]] = MappingProxyType(
    {
        "inference_steps": (1, 200),
        "guidance_scale": (0.0, 20.0),
        "seed": (0, 2**63 - 1),  # any non-negative 64-bit integer
    }
)

SAMPLERS: tuple[str, ...] = ("ddim", "dpmpp_2m", "unipc")
# Steps that suit each sampler (documentation and the benchmark; a request's steps are kept).
RECOMMENDED_STEPS: Mapping[str, int] = MappingProxyType({"ddim": 20, "dpmpp_2m": 10, "unipc": 10})

QUALITIES: tuple[str, ...] = ("exact", "fast")
# preset -> the parameters it sets where the request does not set them itself
QUALITY_PRESETS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "exact": MappingProxyType({}),
        "fast": MappingProxyType({"sampler": "dpmpp_2m", "inference_steps": 10, "enable_deepcache": True}),
    }
)


class InvalidParameter(CodedError, ValueError):
    """A job parameter outside its bounds (the caller's input, hence a coded error)."""

    def __init__(self, message: str, code: str = "INVALID_PARAMETER"):
        super().__init__(code, message)


def check_sampler(name: object) -> str:
    """``name`` if it is a known sampler, else ``InvalidParameter`` with code INVALID_SAMPLER."""
    if name not in SAMPLERS:
        raise InvalidParameter(f"sampler must be one of {', '.join(SAMPLERS)}, not {name!r}", "INVALID_SAMPLER")
    return str(name)


def check_quality(name: object) -> str:
    """``name`` if it is a known preset, else ``InvalidParameter`` with code INVALID_QUALITY."""
    if name not in QUALITIES:
        raise InvalidParameter(f"quality must be one of {', '.join(QUALITIES)}, not {name!r}", "INVALID_QUALITY")
    return str(name)


@dataclass(frozen=True)
class LipSyncParams:
    inference_steps: int = 20
    guidance_scale: float = 1.5  # classifier-free guidance; 1 or less turns it off
    seed: int = 1247
    enable_deepcache: bool = False
    sampler: str = "ddim"  # one of SAMPLERS
    face: str | None = None  # face_selection.py; None: the largest face of each frame (upstream's)
    sync_mode: str = DEFAULT_SYNC_MODE  # length_modes.py: when speech and video lengths differ

    def validate(self) -> None:
        for name, (low, high) in PARAM_BOUNDS.items():
            if not low <= getattr(self, name) <= high:
                raise InvalidParameter(f"{name} must be between {low} and {high}")
        check_sampler(self.sampler)
        check_sync_mode(self.sync_mode)  # INVALID_SYNC_MODE
        if self.face is not None:
            parse_face(self.face)  # INVALID_FACE


def apply_quality(
    quality: str | None, given: Mapping[str, Any], defaults: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A job's parameters (``LipSyncParams`` fields) by precedence: what the request
    set (``given``; None means unset) over the ``quality`` preset over ``defaults`` (the
    service's settings) over ``LipSyncParams``' own defaults. So ``quality=fast`` with
    ``inference_steps=20`` runs dpmpp_2m at 20 steps with DeepCache. ``quality`` None is
    ``exact``. Raises INVALID_QUALITY / INVALID_SAMPLER / INVALID_PARAMETER coded errors."""
    preset = QUALITY_PRESETS[check_quality("exact" if quality is None else quality)]
    names = {f.name for f in fields(LipSyncParams)}
    unknown = (set(given) | set(defaults or {})) - names
    if unknown:
        raise TypeError(f"not job parameters: {sorted(unknown)}")  # the caller's bug, not the request's
    values = {**asdict(LipSyncParams()), **(defaults or {}), **preset}
    values.update({name: value for name, value in given.items() if value is not None})
    LipSyncParams(**values).validate()
    return values
