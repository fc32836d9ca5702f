"""The arguments of each stage's task, from the layout and what earlier stages measured
(used by the scheduler, which releases every task)."""

from __future__ import annotations

from typing import Any

from latentsync_core.data.items import Stage, Task
from latentsync_core.data.layout import Layout


def source_task(stage: Stage, src_id: str, path: str, layout: Layout, made: dict[str, Any] | None = None) -> Task:
    """``check``, ``resample`` or ``shots`` of a source; ``shots`` needs ``resample``'s
    measurements (``made``)."""
    stage = Stage(stage)
    if stage is Stage.CHECK:
        return Task(stage, src_id, {"path": path})
    resampled = layout.resampled(src_id)
    if stage is Stage.RESAMPLE:
        return Task(stage, src_id, {"path": path, "out": str(resampled)})
    if stage is not Stage.SHOTS:
        raise ValueError(f"{stage.label} is not a source stage")
    assert made is not None
    size = {"width": made["width"], "height": made["height"], "audio_samples": made["audio_samples"]}
    return Task(stage, src_id, {"video": str(resampled / "video.mp4"), **size})


def clip_task(
    stage: Stage, clip_id: str, src_id: str, start: int, frames: int, layout: Layout, made: dict[str, Any] | None = None
) -> Task:
    """``align``, ``sync`` or ``quality`` of a segment; ``align`` needs its source's
    ``resample`` measurements."""
    stage = Stage(stage)
    if stage is Stage.ALIGN:
        assert made is not None
        folder = layout.resampled(src_id)
        args = {"video": str(folder / "video.mp4"), "audio": str(folder / "audio.wav")}
        args |= {"width": made["width"], "height": made["height"], "start": start, "frames": frames}
        return Task(stage, clip_id, {**args, "out": str(layout.aligned(clip_id))})
    if stage is Stage.SYNC:
        return Task(stage, clip_id, {"aligned": str(layout.aligned(clip_id)), "out": str(layout.synced(clip_id))})
    if stage is not Stage.QUALITY:
        raise ValueError(f"{stage.label} is not a worker stage of a segment")
    return Task(stage, clip_id, {"synced": str(layout.synced(clip_id)), "out": str(layout.clip(clip_id))})
