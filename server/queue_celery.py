"""Many hosts: jobs on Celery with a Redis broker, records in Redis (``redis_store.py``),
uploads and results on a folder every node mounts (``LATENTSYNC_DATA_DIR``).

API side, ``CeleryDispatcher`` (in place of the device pool): each queued job is sent once
per attempt as a task; a cancel is a flag in Redis that the running worker polls between
steps; a running job whose worker stopped renewing its lease (killed, host lost) is put
back in the queue once, then fails INTERRUPTED, as the embedded mode does after a crash.

Worker side, ``DeviceRuntime`` (``latentsync worker``, one process per device): the models
are loaded once; Celery hands it one job at a time (prefetch 1, late acknowledgement, a
visibility timeout longer than the longest job). A task only runs a job that is still
queued and not claimed for this attempt, so a message redelivered after a crash does
nothing twice.

An object store (S3) in place of the shared folder would take: uploads written there by
the API, each worker downloading inputs into a local work folder and uploading
``result.mp4``, and the result route answering with a presigned URL.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import redis
from celery import Celery

from server.jobs.lifecycle import JobLifecycle
from server.jobs.metrics import Metrics
from server.jobs.model import Job, JobStatus
from server.jobs.redis_store import RedisJobStore
from server.jobs.store import StoreUnavailable
from server.settings import Settings

log = logging.getLogger(__name__)

QUEUE = "latentsync"
RUN_JOB = "latentsync.run_job"


def make_celery(settings: Settings) -> Celery:
    app = Celery("latentsync", broker=settings.broker_url)
    app.conf.update(
        task_default_queue=QUEUE,
        task_acks_late=True,  # a job taken by a worker that dies is not lost with it
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # a busy device holds no other job back from idle ones
        worker_concurrency=1,
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,  # the job record is the result
        worker_hijack_root_logger=False,
    )
    return app


class Keys:
    """The coordination keys beside the records."""

    def __init__(self, prefix: str = "latentsync:"):
        self.prefix = prefix

    def sent(self, job: Job) -> str:
        return f"{self.prefix}sent:{job.id}:{job.attempts}"

    def claim(self, job: Job) -> str:
        return f"{self.prefix}claim:{job.id}:{job.attempts}"

    def lease(self, job_id: str) -> str:
        return f"{self.prefix}lease:{job_id}"

    def cancel(self, job_id: str) -> str:
        return f"{self.prefix}cancel:{job_id}"

    def recovered(self, job: Job) -> str:
        return f"{self.prefix}recovered:{job.id}:{job.attempts}"


class CeleryDispatcher:
    """The API node's side: the same face as the device pool (start, stop, wake, cancel,
    recover; ``describe`` for /ready)."""

    def __init__(self, settings: Settings, store: RedisJobStore, lifecycle: JobLifecycle):
        self.settings, self.store, self.lifecycle = settings, store, lifecycle
        self.celery = make_celery(settings)
        self.redis = store.redis
        self.keys = Keys(store.prefix)
        self.lease_s = settings.worker_lease_s
        self.running_id: str | None = None  # jobs run elsewhere
        self.seconds_per_frame: float | None = None
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="celery-dispatch")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self, timeout: float = 30.0) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def recover(self) -> None:
        """Nothing at start-up: the loop recovers jobs whose worker's lease expired."""

    def request_cancel(self, job_id: str) -> None:
        self.redis.set(self.keys.cancel(job_id), "1", ex=7 * 24 * 3600)

    async def _loop(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.dispatch_once)
            except (redis.RedisError, StoreUnavailable):
                log.exception("redis unreachable; retrying")
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
            if job is not None and self.redis.set(self.keys.sent(job), "1", nx=True, ex=self._key_ttl()):
                self.celery.send_task(RUN_JOB, args=[job.id])
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

    def describe(self) -> dict:
        return {"mode": "celery", "device": None, "dtype": None, "devices": []}

    def memory_stats(self) -> dict[str, int]:
        return {}


class DeviceRuntime:
    """One worker process's device: its models, loaded once, and the job task."""

    def __init__(self, settings: Settings, device_name: str, pipeline: Any, host: str):
        from server.jobs.progress import ProgressBoard
        from server.jobs.webhooks import WebhookSender

        self.settings, self.pipeline = settings, pipeline
        self.store = RedisJobStore(settings.broker_url)
        self.redis = self.store.redis
        self.keys = Keys(self.store.prefix)
        self.metrics = Metrics()
        self._loop = asyncio.new_event_loop()  # webhooks are sent from here
        threading.Thread(target=self._loop.run_forever, name="webhooks", daemon=True).start()
        webhooks = WebhookSender(self._loop, settings.webhook_timeout_s, settings.webhook_retries,
                                 allow=settings.webhook_allow_hosts)  # fmt: skip
        self.lifecycle = JobLifecycle(self.store, self.metrics, webhooks)
        self.board = ProgressBoard(self.store)
        self.worker = {"host": host, "device": device_name}
        self.lease_s = settings.worker_lease_s
        self.stopping = False

    def run_job(self, job_id: str) -> None:
        """The task: run the job if it is still queued and this attempt is not claimed."""
        from server.worker import run_started_job

        job = self.store.get(job_id)
        if job is None or job.status != JobStatus.QUEUED:
            return  # canceled meanwhile, or a message redelivered after the job moved on
        if not self.redis.set(self.keys.claim(job), self.worker["host"], nx=True, ex=int(self.lease_s * 10)):
            return
        lease = _Lease(self.redis, self.keys.lease(job.id), self.lease_s)
        try:
            job = self.lifecycle.start(job, worker=self.worker)
            log.info("job %s started on %s", job.id, self.worker)
            report = self.board.begin(job.id)
            run_started_job(job, self.pipeline, self.lifecycle, self.metrics, report,
                            _CancelPoll(self.redis, self.keys.cancel(job.id)), lambda: self.stopping)  # fmt: skip
        finally:
            lease.stop()
            self.board.end(job.id)


class _Lease:
    """A key that lives while its job runs here: renewed every quarter of its lifetime."""

    def __init__(self, client: redis.Redis, key: str, seconds: float):
        self.client, self.key, self.seconds = client, key, seconds
        self._done = threading.Event()
        self._renew()
        self._thread = threading.Thread(target=self._run, name="lease", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        self.client.set(self.key, "1", px=int(self.seconds * 1000))

    def _run(self) -> None:
        while not self._done.wait(self.seconds / 4):
            try:
                self._renew()
            except redis.RedisError:
                log.exception("lease renewal failed")

    def stop(self) -> None:
        self._done.set()
        self._thread.join()
        self.client.delete(self.key)


class _CancelPoll:
    """``should_cancel`` for a job on this host: the API's flag in Redis, read at most every
    half second (the pipeline asks between every step)."""

    def __init__(self, client: redis.Redis, key: str):
        self.client, self.key = client, key
        self._checked, self._value = 0.0, False

    def __call__(self) -> bool:
        now = time.monotonic()
        if not self._value and now - self._checked >= 0.5:
            self._checked = now
            self._value = bool(self.client.exists(self.key))
        return self._value
