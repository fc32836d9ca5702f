"""The one job lifecycle: the transitions between the statuses of ``model.JobStatus``.

Every change of a job's status goes through :class:`JobLifecycle`, which updates the record,
the metrics and the webhook together (the record owes the webhook until it is delivered:
``owed_webhooks.py``), so no path (a cancel of a queued job, a restart, a
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
import time
from typing import Any

from server.jobs.folder import JobFolder
from server.jobs.metrics import Metrics
from server.jobs.model import Job, JobStatus
from server.jobs.owed_webhooks import JobNotifier, send_owed
from server.jobs.store import JobStore

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 2  # a job interrupted by a crash runs once more, then fails INTERRUPTED


class TransitionError(RuntimeError):
    """A transition that the lifecycle does not allow from the job's current status."""


class JobLifecycle:
    def __init__(self, store: JobStore, metrics: Metrics, webhooks: JobNotifier):
        self.store, self.metrics, self.webhooks = store, metrics, webhooks

    def start(self, job: Job, worker: dict[str, str] | None = None) -> Job:
        """``worker``: who runs it, ``{"host", "device"}`` (kept in the record)."""
        self._expect(job, JobStatus.QUEUED)
        self.store.update(
            job.id,
            status=JobStatus.RUNNING,
            started_at=time.time(),
            attempts=job.attempts + 1,
            stage="probe",
            progress=0.0,
            frames_done=0,
            frames_total=0,
            worker=worker,
        )
        return self._reload(job)

    def succeed(self, job: Job, result_path: str, result_info: dict[str, Any]) -> Job:
        self._expect(job, JobStatus.RUNNING)
        fields = {"progress": 1.0, "stage": "done", "result_path": result_path, "result_info": result_info}
        return self._end(job, JobStatus.SUCCEEDED, **fields)

    def fail(self, job: Job, code: str, message: str) -> Job:
        self._expect(job, JobStatus.RUNNING)
        return self._end(job, JobStatus.FAILED, error_code=code, error_message=message)

    def cancel(self, job: Job) -> Job:
        """A queued job, or a running one whose pipeline has stopped."""
        self._expect(job, JobStatus.QUEUED, JobStatus.RUNNING)
        # Its files go first, so a client that sees "canceled" finds them gone; the record
        # (job.json) stays until the job is purged.
        JobFolder.of(job).remove_files()
        return self._end(job, JobStatus.CANCELED, error_code="CANCELED", error_message="canceled by request")

    def requeue(self, job: Job) -> Job:
        """Graceful shutdown stopped a running job: it waits for the next start, and this
        attempt does not count."""
        self._expect(job, JobStatus.RUNNING)
        attempts = max(job.attempts - 1, 0)
        self.store.update(job.id, status=JobStatus.QUEUED, attempts=attempts, stage=None, progress=0.0, frames_done=0)
        log.info("job %s re-queued at shutdown", job.id)
        return self._reload(job)

    def interrupt(self, job: Job) -> Job:
        """The process died while the job ran: once more, then INTERRUPTED."""
        self._expect(job, JobStatus.RUNNING)
        JobFolder.of(job).remove_tmp()
        if job.attempts >= MAX_ATTEMPTS:
            message = "the service stopped twice while running this job"
            return self._end(job, JobStatus.FAILED, error_code="INTERRUPTED", error_message=message)
        self.store.update(job.id, status=JobStatus.QUEUED, stage=None, progress=0.0, frames_done=0)
        log.warning("job %s was interrupted by a restart; running it again", job.id)
        return self._reload(job)

    def remove(self, job: Job) -> None:
        """A finished job goes with its files (``DELETE`` of a job that ended: the caller saw it final)."""
        JobFolder.of(job).remove()
        self.store.delete(job.id)

    # ---- helpers ----------------------------------------------------------------------
    def _end(self, job: Job, status: JobStatus, **fields: Any) -> Job:
        now = time.time()
        if job.webhook_url:  # owed in the same update that ends the job: a crash cannot lose it
            fields.update(webhook_owed_since=now, webhook_outcome=None)
        self.store.update(job.id, status=status, finished_at=now, **fields)
        JobFolder.of(job).remove_inputs()  # an ended job never runs again: only its result stays
        self.metrics.jobs_finished.labels(status.value).inc()
        ended = self._reload(job)
        send_owed(self.store, self.webhooks, ended)
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
