"""The lip-sync pipeline as stages (see ``pipeline.py``), its parameters, the template
cache and the UNet/VAE runners.

``params`` imports nothing heavy (a web schema can use ``PARAM_BOUNDS`` without loading
torch); everything else is imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from latentsync_core.inference.params import PARAM_BOUNDS, InvalidParameter, LipSyncParams

_LAZY = {
    "LipSyncPipeline": "pipeline",
    "LipSyncResult": "pipeline",
    "PipelineOptions": "factory",
    "build_pipeline": "factory",
    "ping_pong_index": "source",
    "load_mask": "conditioning",
    "TemplateCache": "template_cache",
    "AccelOptions": "runners",
}

__all__ = ["PARAM_BOUNDS", "InvalidParameter", "LipSyncParams", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
