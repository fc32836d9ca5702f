"""Where the pipeline used to live: its names, re-exported from ``latentsync_core.inference``."""

from latentsync_core.errors import Cancelled
from latentsync_core.inference.conditioning import load_mask
from latentsync_core.inference.params import LipSyncParams
from latentsync_core.inference.pipeline import LipSyncPipeline, LipSyncResult
from latentsync_core.inference.source import ping_pong_index

__all__ = ["Cancelled", "LipSyncParams", "LipSyncPipeline", "LipSyncResult", "load_mask", "ping_pong_index"]
