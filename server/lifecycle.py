"""The one job lifecycle: statuses and the transitions between them.

Every change of a job's status goes through :class:`JobLifecycle`, which updates the record,
the metrics and the webhook together, so no path (a cancel of a queued job, a restart, a
failure) can forget one of them.

    queued --start--> running --succeed--> succeeded
       |                 |----fail-------> failed
       |                 |----cancel-----> canceled
       |                 |----requeue----> queued     (graceful shutdown: the attempt does not count)
       |                 '----interrupt--> queued once, then failed INTERRUPTED (after a crash)
       '------cancel-------------------------> canceled
"""

from __future__ import annotations

import logging
import shutil
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from server.job_store import Job, JobStore
    from server.metrics import Metrics
    from server.webhooks import WebhookSender

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 2  # a job interrupted by a crash runs once more, then fails INTERRUPTED


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def final(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED)


class TransitionError(RuntimeError):
    """A transition that the lifecycle does not allow from the job's current status."""


class JobLifecycle:
    def __init__(self, store: JobStore, metrics: Metrics, webhooks: WebhookSender):
        self.store, self.metrics, self.webhooks = store, metrics, webhooks

    def start(self, job: Job, worker: dict[str, str] | None = None) -> Job:
        """``worker``: who runs it, ``{"host", "device"}`` (kept in the record)."""
        self._expect(job, JobStatus.QUEUED)
        self.store.update(job.id, status=JobStatus.RUNNING, started_at=time.time(), attempts=job.attempts + 1,
                          stage="probe", progress=0.0, frames_done=0, frames_total=0, worker=worker)  # fmt: skip
        return self._reload(job)

    def succeed(self, job: Job, result_path: str, result_info: dict[str, Any]) -> Job:
        self._expect(job, JobStatus.RUNNING)
        return self._end(job, JobStatus.SUCCEEDED, progress=1.0, stage="done", result_path=result_path,
                         result_info=result_info)  # fmt: skip

    def fail(self, job: Job, code: str, message: str) -> Job:
        self._expect(job, JobStatus.RUNNING)
        return self._end(job, JobStatus.FAILED, error_code=code, error_message=message)

    def cancel(self, job: Job) -> Job:
        """A queued job, or a running one whose pipeline has stopped."""
        self._expect(job, JobStatus.QUEUED, JobStatus.RUNNING)
        ended = self._end(job, JobStatus.CANCELED, error_code="CANCELED", error_message="canceled by request")
        shutil.rmtree(job.work_dir, ignore_errors=True)
        return ended

    def requeue(self, job: Job) -> Job:
        """Graceful shutdown stopped a running job: it waits for the next start, and this
        attempt does not count."""
        self._expect(job, JobStatus.RUNNING)
        self.store.update(job.id, status=JobStatus.QUEUED, attempts=max(job.attempts - 1, 0), stage=None,
                          progress=0.0, frames_done=0)  # fmt: skip
        log.info("job %s re-queued at shutdown", job.id)
        return self._reload(job)

    def interrupt(self, job: Job) -> Job:
        """The process died while the job ran: once more, then INTERRUPTED."""
        self._expect(job, JobStatus.RUNNING)
        shutil.rmtree(Path(job.work_dir) / "tmp", ignore_errors=True)
        if job.attempts >= MAX_ATTEMPTS:
            return self._end(job, JobStatus.FAILED, error_code="INTERRUPTED",
                             error_message="the service stopped twice while running this job")  # fmt: skip
        self.store.update(job.id, status=JobStatus.QUEUED, stage=None, progress=0.0, frames_done=0)
        log.warning("job %s was interrupted by a restart; running it again", job.id)
        return self._reload(job)

    # ---- helpers ----------------------------------------------------------------------
    def _end(self, job: Job, status: JobStatus, **fields: Any) -> Job:
        self.store.update(job.id, status=status, finished_at=time.time(), **fields)
        self.metrics.jobs_finished.labels(status.value).inc()
        ended = self._reload(job)
        if ended.webhook_url:
            self.webhooks.send(ended.webhook_url, ended)
        return ended

    def _expect(self, job: Job, *allowed: JobStatus) -> None:
        current = self.store.get(job.id)
        status = current.status if current is not None else None
        if status not in allowed:
            raise TransitionError(f"job {job.id} is {status}, not {' or '.join(allowed)}")

    def _reload(self, job: Job) -> Job:
        fresh = self.store.get(job.id)
        if fresh is None:
            raise TransitionError(f"job {job.id} disappeared")
        return fresh
