"""What to do next, item by item: the pipeline's state machine, shared by the engines.

Every recorded decision is final; a stage runs for an item only when its decision is
missing. Each outcome is recorded (one transaction) before the item's next task is
released and before the inputs it consumed are deleted, so after a kill at any point a
new run finds every input it still needs. Should an intermediate be missing anyway
(deleted by hand), the item steps back to the stage that makes it.

New sources are admitted only while fewer than ``max_pending_segments`` items are in flight
(segments queued for the devices, sources in the CPU stages), which bounds the
intermediates on disk.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latentsync_core.data.config import PreprocessConfig
from latentsync_core.data.items import CLIP_STAGES, SOURCE_STAGES, Outcome, Stage, Task
from latentsync_core.data.layout import Layout
from latentsync_core.data.manifest import Manifest
from latentsync_core.data.progress import StageBars
from latentsync_core.data.stages.segment import plan_segments
from latentsync_core.data.tasks import clip_task, source_task
from latentsync_core.storage.atomic import remove

log = logging.getLogger(__name__)


@dataclass
class _Clip:
    source: str
    start: int
    frames: int
    status: str  # pending | kept | rejected
    stage: Stage  # last stage decided


class Scheduler:
    def __init__(self, cfg: PreprocessConfig, layout: Layout, manifest: Manifest, run_id: int, bars: StageBars):
        self.cfg, self.layout, self.manifest, self.run_id, self.bars = cfg, layout, manifest, run_id, bars
        self.decided: dict[tuple[str, Stage], tuple[bool, dict[str, Any]]] = {}
        self.sources: dict[str, dict[str, Any]] = {}
        self.clips: dict[str, _Clip] = {}
        self.clips_of: dict[str, list[str]] = {}
        self.new_sources: deque[str] = deque()
        self.ready_cpu: deque[Task] = deque()
        self.ready_device: deque[Task] = deque()
        self.active: dict[str, Stage] = {}  # item -> stage of its queued or running task
        self.waiting: dict[str, set[str]] = {}  # source -> clips waiting for its resampled files
        self.processed: Counter[Stage] = Counter()
        self.errors: list[dict[str, Any]] = []
        self.failed: set[str] = set()  # items that hit an unexpected error: left for the next run

    # --- start ----------------------------------------------------------------------------------
    def start(self) -> None:
        """Load the manifest's state and queue what each item needs next."""
        for (item, stage), row in self.manifest.decisions().items():
            self.decided[(item, Stage(stage))] = (row["decision"] == "pass", json.loads(row["measurements"]))
        for row in self.manifest.sources():
            self.sources[row["source_id"]] = dict(row)
        for row in self.manifest.clips():
            clip = _Clip(row["source_id"], row["start_frame"], row["frames"], row["status"], Stage(row["stage"]))
            self.clips[row["clip_id"]] = clip
            self.clips_of.setdefault(row["source_id"], []).append(row["clip_id"])
        self._count_for_bars()
        for src in self.sources:
            self._advance_source(src)

    def _count_for_bars(self) -> None:
        b = self.bars
        b.grow(Stage.CHECK, len(self.sources))
        for src in self.sources:
            for stage in SOURCE_STAGES:
                if (src, stage) in self.decided:
                    b.advance(stage)
                    if self.decided[(src, stage)][0]:
                        b.grow(Stage(stage + 1))
            if self.sources[src]["status"] == "segmented":
                b.advance(Stage.SEGMENT)
        for clip_id in self.clips:
            for stage in CLIP_STAGES:  # a clip's segment decision counts once per source, above
                passed = self.decided.get((clip_id, stage), (None,))[0]
                if passed is None:
                    break
                if stage is not Stage.SEGMENT:
                    b.advance(stage)
                if passed and stage.next is not None:
                    b.grow(stage.next)

    # --- what is ready (the one API every engine uses) ----------------------------------------
    def take_device(self) -> list[Task]:
        """Every task that is ready for a device worker (segments: back-pressure is on admission)."""
        tasks = list(self.ready_device)
        self.ready_device.clear()
        return tasks

    def take_cpu(self, slots: int) -> list[Task]:
        """Up to ``slots`` tasks for the CPU workers: those ready first, then new sources while
        fewer than ``max_pending_segments`` items are in flight."""
        tasks: list[Task] = []
        while slots > 0 and self.ready_cpu:
            tasks.append(self.ready_cpu.popleft())
            slots -= 1
        while slots > 0 and self.new_sources and self.device_backlog() < self.cfg.max_pending_segments:
            src = self.new_sources.popleft()
            self.active[src] = Stage.CHECK
            tasks.append(self._task(Stage.CHECK, src))
            slots -= 1
        return tasks

    def device_backlog(self) -> int:
        """Segments queued for the devices, plus sources on their way (each makes at least one)."""
        return len(self.active)

    def idle(self) -> bool:
        return not (self.ready_cpu or self.ready_device or self.new_sources or self.active)

    @property
    def complete(self) -> bool:
        """Every source and clip has its final decision."""
        return all(s["status"] != "pending" for s in self.sources.values()) and all(
            c.status != "pending" for c in self.clips.values()
        )

    # --- outcomes -------------------------------------------------------------------------------
    def on_outcome(self, task: Task, o: Outcome) -> None:
        self.active.pop(task.item_id, None)
        if o.error:
            self.errors.append({"stage": o.stage, "item": o.item_id, "error": o.error})
            self.failed.add(o.item_id)
            log.warning("stage %s failed on %s (retried by the next run): %s", o.stage.label, o.item_id, o.error)
            return
        self.processed[o.stage] += 1
        redo = (o.item_id, o.stage) in self.decided  # an intermediate was re-made
        if not redo:
            self.bars.advance(o.stage)
            if o.passed and o.stage.next is not None:
                self.bars.grow(o.stage.next)
        if o.stage.on_source:
            self._on_source_outcome(o)
            return
        clip = self.clips[o.item_id]
        kept = o.passed and o.stage is Stage.QUALITY
        clip_path = str(self.layout.clip(o.item_id)) if kept else ""
        self.manifest.record(o, self.run_id, clip_path)
        self.decided[(o.item_id, o.stage)] = (o.passed, o.measurements)
        clip.stage = max(clip.stage, o.stage) if o.passed else o.stage
        clip.status = "kept" if kept else ("pending" if o.passed else "rejected")
        if o.stage is Stage.SYNC:
            self._drop(self.layout.aligned(o.item_id))
        elif o.stage is Stage.QUALITY:
            self._drop(self.layout.synced(o.item_id))
        self._maybe_drop_resampled(clip.source)
        if clip.status == "pending":
            self._advance_clip(o.item_id)

    def _on_source_outcome(self, o: Outcome) -> None:
        src = self.sources[o.item_id]
        if src["status"] == "segmented":  # resample re-made for segments that still need it
            waiting = sorted(self.waiting.pop(o.item_id, set()))
            if not o.passed:
                for clip_id in waiting:
                    error = f"re-making stage 2 failed: {o.reason}"
                    self.errors.append({"stage": Stage.ALIGN, "item": clip_id, "error": error})
                return
            for clip_id in waiting:
                self._advance_clip(clip_id)
            return
        self.manifest.record(o, self.run_id)
        self.decided[(o.item_id, o.stage)] = (o.passed, o.measurements)
        if not o.passed:
            src["status"] = "rejected"
            if o.stage is Stage.SHOTS:
                self._drop(self.layout.resampled(o.item_id))
        self._advance_source(o.item_id)

    # --- stepping items forward -----------------------------------------------------------------
    def _advance_source(self, src: str) -> None:
        info = self.sources[src]
        if info["status"] == "rejected" or src in self.active or src in self.failed:
            return
        if info["status"] == "segmented":
            for clip_id in self.clips_of.get(src, []):
                self._advance_clip(clip_id)
            return
        if (src, Stage.CHECK) not in self.decided:
            self.new_sources.append(src)
        elif (src, Stage.RESAMPLE) not in self.decided or not self._resampled_ok(src):
            self._queue(self._task(Stage.RESAMPLE, src))
        elif (src, Stage.SHOTS) not in self.decided:
            self._queue(self._task(Stage.SHOTS, src))
        else:
            self._segment(src)

    def _segment(self, src: str) -> None:
        """The segment stage, here: plain arithmetic on the shots."""
        shots = self.decided[(src, Stage.SHOTS)][1]["shots"]
        segments = plan_segments(src, shots, self.cfg.segment_frames, self.cfg.min_segment_frames)
        self.manifest.add_segments(src, segments, self.run_id)
        self.sources[src]["status"] = "segmented"
        self.processed[Stage.SEGMENT] += 1
        self.bars.advance(Stage.SEGMENT)
        for s in segments:
            status = "pending" if s.kept else "rejected"
            self.clips[s.clip_id] = _Clip(src, s.start, s.frames, status, Stage.SEGMENT)
            self.clips_of.setdefault(src, []).append(s.clip_id)
            self.decided[(s.clip_id, Stage.SEGMENT)] = (s.kept, {})
        self.bars.grow(Stage.ALIGN, sum(s.kept for s in segments))
        self._maybe_drop_resampled(src)
        for s in segments:
            if s.kept:
                self._advance_clip(s.clip_id)

    def _advance_clip(self, clip_id: str) -> None:
        """Queue the clip's next stage, stepping back to the stage that makes a missing input."""
        clip = self.clips[clip_id]
        if clip.status != "pending" or clip_id in self.active or clip_id in self.failed:
            return
        stage = clip.stage.next
        assert stage is not None  # a clip past the last stage is no longer pending
        if stage is Stage.QUALITY and not self.layout.synced(clip_id).is_file():
            stage = Stage.SYNC
        if stage is Stage.SYNC and not self.layout.aligned(clip_id).is_file():
            stage = Stage.ALIGN
        if stage is Stage.ALIGN and not self._resampled_ok(clip.source):
            self.waiting.setdefault(clip.source, set()).add(clip_id)
            if clip.source not in self.active:
                self._queue(self._task(Stage.RESAMPLE, clip.source))
            return
        self._queue(self._task(stage, clip_id))

    def _queue(self, task: Task) -> None:
        self.active[task.item_id] = task.stage
        (self.ready_device if task.stage.on_device else self.ready_cpu).append(task)

    # --- tasks ----------------------------------------------------------------------------------
    def _task(self, stage: Stage, item: str) -> Task:
        if stage.on_source:
            made = self.decided[(item, Stage.RESAMPLE)][1] if stage is Stage.SHOTS else None
            return source_task(stage, item, self.sources[item]["path"], self.layout, made)
        clip = self.clips[item]
        made = self.decided[(clip.source, Stage.RESAMPLE)][1] if stage is Stage.ALIGN else None
        return clip_task(stage, item, clip.source, clip.start, clip.frames, self.layout, made)

    # --- intermediates --------------------------------------------------------------------------
    def _resampled_ok(self, src: str) -> bool:
        folder = self.layout.resampled(src)
        return (folder / "video.mp4").is_file() and (folder / "audio.wav").is_file()

    def _maybe_drop_resampled(self, src: str) -> None:
        """The resampled source goes once none of its segments still has to be aligned."""
        if self.sources[src]["status"] != "segmented" or self.waiting.get(src):
            return
        for clip_id in self.clips_of.get(src, []):
            clip = self.clips[clip_id]
            if clip.status == "pending" and (clip.stage < Stage.ALIGN or self.active.get(clip_id) is Stage.ALIGN):
                return
        self._drop(self.layout.resampled(src))

    def _drop(self, path: Path) -> None:
        if not self.cfg.keep_intermediate:
            remove(path)
