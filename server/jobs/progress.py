"""Progress of a running job: a snapshot in memory for polls, the store at most twice a second."""

from __future__ import annotations

import logging
import time
from typing import Any

from latentsync_core.inference.stages import ProgressEvent, ProgressFn, Stage
from server.jobs.store import JobStore, StoreUnavailable

log = logging.getLogger(__name__)

# Share of the whole job each stage stands for, for progress and ETA.
STAGE_SPAN = {
    Stage.PROBE: (0.0, 0.01),
    Stage.AUDIO: (0.01, 0.04),
    Stage.DETECT: (0.04, 0.15),
    Stage.DENOISE: (0.15, 0.98),
    Stage.ENCODE: (0.98, 1.0),
}
PERSIST_EVERY_S = 0.5


class ProgressBoard:
    """Job id -> latest snapshot. Written by the device thread, read by polls without the
    database (a dict assignment is atomic for readers)."""

    def __init__(self, store: JobStore):
        self.store = store
        self.live: dict[str, dict[str, Any]] = {}

    def begin(self, job_id: str) -> ProgressFn:
        """The pipeline's progress callback for ``job_id``."""
        self.live[job_id] = {"stage": Stage.PROBE.value, "progress": 0.0, "frames_done": 0, "frames_total": 0}
        last_persist = [0.0]

        def report(event: ProgressEvent) -> None:
            stage, done, total = event.stage, event.done, event.total
            lo, hi = STAGE_SPAN.get(stage, (0.0, 1.0))
            fraction = lo + (hi - lo) * (done / total if total else 0.0)
            snap: dict[str, Any] = {"stage": stage.value, "progress": round(min(fraction, 1.0), 4)}
            if stage in (Stage.DETECT, Stage.DENOISE):
                snap.update(frames_done=done, frames_total=total)
            else:
                snap.update({k: v for k, v in self.live.get(job_id, {}).items() if k.startswith("frames_")})
            self.live[job_id] = snap
            now = time.monotonic()
            if now - last_persist[0] >= PERSIST_EVERY_S:
                last_persist[0] = now
                try:
                    self.store.update(job_id, **snap)
                except StoreUnavailable as exc:  # the job goes on; polls here still see the snapshot
                    log.warning("progress of job %s not stored: %s", job_id, exc)

        return report

    def end(self, job_id: str) -> None:
        self.live.pop(job_id, None)

    def get(self, job_id: str) -> dict[str, Any] | None:
        return self.live.get(job_id)
