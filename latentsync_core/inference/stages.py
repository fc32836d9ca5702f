"""The stages of a lip-sync job, in the order they run, and the progress event each reports.

The stage values are part of the HTTP contract (a job's ``stage`` field shows them), so
they stay the plain lowercase words; ``Stage`` is a ``str`` enum, so it compares, hashes
and serialises as those words.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum


class Stage(str, Enum):
    PROBE = "probe"  # check both inputs before any heavy work
    AUDIO = "audio"  # Whisper features of the speech
    DETECT = "detect"  # face alignment matrices of the source (or the cached template's)
    DENOISE = "denoise"  # per window: conditioning -> DDIM -> decode and composite
    ENCODE = "encode"  # finish the output file

    def __str__(self) -> str:  # as StrEnum (3.11) does: the value, for f-strings and logs
        return self.value


@dataclass(frozen=True)
class ProgressEvent:
    """``done`` of ``total`` units of ``stage`` (frames for detect and denoise; 0 or 1 of
    1 for the one-step stages)."""

    stage: Stage
    done: int
    total: int


ProgressFn = Callable[[ProgressEvent], None]
