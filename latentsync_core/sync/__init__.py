"""Sync scoring: SyncNetV2 offset search, LSE-C and LSE-D."""

from latentsync_core.sync.offset import offset_and_confidence, search_offset, shift_distances
from latentsync_core.sync.score import SyncScore, score_frames

__all__ = ["SyncScore", "offset_and_confidence", "score_frames", "search_offset", "shift_distances"]
