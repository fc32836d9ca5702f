"""Sync scoring: SyncNetV2 offset search, LSE-C and LSE-D, of face crops or a whole video."""

from latentsync_core.sync.offset import offset_and_confidence, search_offset, shift_distances
from latentsync_core.sync.score import SyncScore, score_frames
from latentsync_core.sync.video import SyncReport, load_syncnet_v2, score_crops, score_video

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
