"""Stage 4, ``segment``: cutting shots into fixed-length segments.

Pure arithmetic on frame numbers (the resampled video is exactly 25 fps), so it runs in
the coordinating process and no file is cut: the alignment stage reads each segment's
frame range straight from the resampled source, saving one full encode of the footage.
"""

from __future__ import annotations

from dataclasses import dataclass

from latentsync_core.data.items import clip_id
from latentsync_core.media.constants import FPS


@dataclass(frozen=True)
class Segment:
    clip_id: str
    shot: int
    index: int  # segment number within the shot
    start: int  # first frame
    frames: int
    kept: bool  # False: a remainder (or shot) shorter than the minimum

    @property
    def start_s(self) -> float:
        return self.start / FPS

    @property
    def end_s(self) -> float:
        return (self.start + self.frames) / FPS


def plan_segments(src_id: str, shots: list[list[int]], segment_frames: int, min_frames: int) -> list[Segment]:
    """Every shot ``[start, end)`` becomes whole segments of ``segment_frames``; what is left
    over becomes one more segment if it has at least ``min_frames``, else a dropped one
    (listed, so the manifest and the report account for every frame)."""
    if segment_frames < 1 or min_frames < 1:
        raise ValueError("segment lengths must be positive")
    out: list[Segment] = []
    for shot, (start, end) in enumerate(shots):
        length = end - start
        whole, rest = divmod(length, segment_frames)
        for i in range(whole):
            out.append(Segment(clip_id(src_id, shot, i), shot, i, start + i * segment_frames, segment_frames, True))
        if rest:
            first = start + whole * segment_frames
            out.append(Segment(clip_id(src_id, shot, whole), shot, whole, first, rest, rest >= min_frames))
    return out
