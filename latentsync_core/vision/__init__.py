"""Face detection, alignment and restoration."""

from latentsync_core.vision.alignment import FaceAligner

__all__ = ["FaceAligner"]
