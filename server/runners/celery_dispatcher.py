"""The API node's side of many-hosts mode (``celery_app.py`` tells the whole design): a
:class:`~server.runners.runner.JobRunner` that sends each queued job to Celery once per
attempt, flags cancels in Redis, and recovers jobs whose worker's lease expired."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import kombu.exceptions
import redis

from server.jobs.lifecycle import JobLifecycle
from server.jobs.model import Job, JobStatus
from server.jobs.redis_store import RedisJobStore
from server.jobs.store import StoreUnavailable
from server.runners.celery_app import RUN_JOB, Keys, make_celery
from server.runners.runner import FastPath, LoadState
from server.settings import Settings

log = logging.getLogger(__name__)
SEND_RETRY_S = 60


class CeleryDispatcher:
    """Jobs run on Celery workers: nothing to load here, no device, no live progress (the
    workers write it into the records)."""

    def __init__(self, settings: Settings, store: RedisJobStore, lifecycle: JobLifecycle):
        self.settings, self.store, self.lifecycle = settings, store, lifecycle
        self.celery = make_celery(settings)
        self.redis = store.redis
        self.keys = Keys(store.prefix)
        self.lease_s = settings.worker_lease_s
        self.state: LoadState = "loading"
        self.load_error: str | None = None
        self.fast_path: FastPath = "off"
        self.running_id: str | None = None  # jobs run elsewhere
        self.seconds_per_frame: float | None = None
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()

    def load(self) -> None:
        self.state = "ready"  # the workers hold the models

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="celery-dispatch")

    def submit(self, job: Job) -> None:
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    async def stop(self, timeout: float = 30.0) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def recover(self) -> None:
        """Nothing at start-up: the loop recovers jobs whose worker's lease expired."""

    def cancel(self, job_id: str) -> None:
        self.redis.set(self.keys.cancel(job_id), "1", ex=7 * 24 * 3600)

    def progress(self, job_id: str) -> dict[str, Any] | None:
        return None  # the record has it (the worker writes it twice a second)

    async def _loop(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.dispatch_once)
            except (redis.RedisError, StoreUnavailable, kombu.exceptions.OperationalError) as exc:
                log.warning("redis unreachable (%s); retrying", exc)  # routes answer 503 meanwhile
            except Exception:  # never let the dispatcher die: every queued job would wait forever
                log.exception("dispatching failed; retrying")
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            except TimeoutError:
                pass

    def dispatch_once(self) -> None:
        """Send queued jobs not yet sent for their attempt; requeue running jobs whose
        worker's lease expired (once more, then INTERRUPTED; one API node acts on each)."""
        for job_id in self.store.queued_ids():
            job = self.store.get(job_id)
            # The right to send this attempt, held briefly until the message is out: a send that
            # failed (Redis went away in between) is tried again once it lapses.
            sent = self.keys.sent(job) if job is not None else None
            if sent is not None and self.redis.set(sent, "1", nx=True, ex=SEND_RETRY_S):
                self.celery.send_task(RUN_JOB, args=[job.id])
                self.redis.expire(sent, self._key_ttl())
        for job_id in self.store.ids_with_status(JobStatus.RUNNING):
            job = self.store.get(job_id)
            if job is None or self.redis.exists(self.keys.lease(job_id)):
                continue
            if time.time() - (job.started_at or 0) < self.lease_s:  # its worker is writing the first lease
                continue
            if self.redis.set(self.keys.recovered(job), "1", nx=True, ex=self._key_ttl()):
                log.warning("job %s lost its worker %s", job.id, job.worker)
                job = self.lifecycle.interrupt(job)
                if job.status == JobStatus.QUEUED:
                    self.wake()

    def _key_ttl(self) -> int:
        return int(self.settings.visibility_timeout_s * 2)

    def describe(self) -> dict[str, Any]:
        return {"mode": "celery", "device": None, "dtype": None, "devices": []}

    def memory_stats(self) -> dict[str, int]:
        return {}
