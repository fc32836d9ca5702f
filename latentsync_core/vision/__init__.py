"""Face detection, tracking, alignment and restoration.

``FaceAligner`` (torch) is imported on first use, so detection and tracking (the ``faces``
command) start without loading torch."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["FaceAligner"]


def __getattr__(name: str) -> Any:
    if name != "FaceAligner":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return importlib.import_module(f"{__name__}.alignment").FaceAligner
