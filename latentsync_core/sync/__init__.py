"""Sync scoring: SyncNetV2 offset search, LSE-C and LSE-D, of face crops or a whole video.

The names below load on first use (PEP 562): importing a submodule such as ``sync.cli``,
which every ``latentsync`` command does to register ``sync-score``, must not load torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_HOMES = {
    "offset_and_confidence": "offset",
    "search_offset": "offset",
    "shift_distances": "offset",
    "SyncScore": "score",
    "score_frames": "score",
    "SyncReport": "video",
    "load_syncnet_v2": "video",
    "score_crops": "video",
    "score_video": "video",
}

__all__ = [
    "SyncReport",
    "SyncScore",
    "load_syncnet_v2",
    "offset_and_confidence",
    "score_crops",
    "score_frames",
    "score_video",
    "search_offset",
    "shift_distances",
]

if TYPE_CHECKING:
    from latentsync_core.sync.offset import offset_and_confidence, search_offset, shift_distances
    from latentsync_core.sync.score import SyncScore, score_frames
    from latentsync_core.sync.video import SyncReport, load_syncnet_v2, score_crops, score_video


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
