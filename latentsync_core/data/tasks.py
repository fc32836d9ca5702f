"""The arguments of each stage's task, from the layout and what earlier stages measured:
one place, used by the scheduler and by the Ray engine's per-item stage chains."""

from __future__ import annotations

from typing import Any

from latentsync_core.data.items import Task
from latentsync_core.data.layout import Layout


def source_task(stage: int, src_id: str, path: str, layout: Layout, made: dict[str, Any] | None = None) -> Task:
    """Stage 1, 2 or 3 of a source; stage 3 needs stage 2's measurements (``made``)."""
    if stage == 1:
        return Task(1, src_id, {"path": path})
    resampled = layout.resampled(src_id)
    if stage == 2:
        return Task(2, src_id, {"path": path, "out": str(resampled)})
    assert made is not None
    return Task(3, src_id, {"video": str(resampled / "video.mp4"), "width": made["width"],
                            "height": made["height"], "audio_samples": made["audio_samples"]})  # fmt: skip


def clip_task(
    stage: int, clip_id: str, src_id: str, start: int, frames: int, layout: Layout, made: dict[str, Any] | None = None
) -> Task:
    """Stage 5, 6 or 7 of a segment; stage 5 needs its source's stage 2 measurements."""
    if stage == 5:
        assert made is not None
        folder = layout.resampled(src_id)
        return Task(5, clip_id, {"video": str(folder / "video.mp4"), "audio": str(folder / "audio.wav"),
                                 "width": made["width"], "height": made["height"], "start": start,
                                 "frames": frames, "out": str(layout.aligned(clip_id))})  # fmt: skip
    if stage == 6:
        return Task(6, clip_id, {"aligned": str(layout.aligned(clip_id)), "out": str(layout.synced(clip_id))})
    return Task(7, clip_id, {"synced": str(layout.synced(clip_id)), "out": str(layout.clip(clip_id))})
