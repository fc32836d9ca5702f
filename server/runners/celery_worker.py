"""A worker host's side of many-hosts mode (``celery_app.py`` tells the whole design): one
device's models, loaded once, and the task that runs a job on them."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import TYPE_CHECKING

import redis
from celery.exceptions import Reject

from server.jobs.lifecycle import JobLifecycle
from server.jobs.metrics import Metrics
from server.jobs.model import JobStatus
from server.jobs.progress import ProgressBoard
from server.jobs.redis_store import RedisJobStore
from server.jobs.webhooks import WebhookSender
from server.runners.celery_app import Keys
from server.runners.run_job import retry_store, run_started_job
from server.settings import Settings

if TYPE_CHECKING:
    from latentsync_core.inference.pipeline import LipSyncPipeline

log = logging.getLogger(__name__)


class DeviceRuntime:
    """One worker process's device: its models, loaded once, and the job task."""

    def __init__(self, settings: Settings, device_name: str, pipeline: LipSyncPipeline, host: str):
        self.settings, self.pipeline = settings, pipeline
        self.store = RedisJobStore(settings.broker_url)
        self.redis = self.store.redis
        self.keys = Keys(self.store.prefix)
        self.metrics = Metrics()
        self._loop = asyncio.new_event_loop()  # webhooks are sent from here
        threading.Thread(target=self._loop.run_forever, name="webhooks", daemon=True).start()
        self.webhooks = webhooks = WebhookSender(
            self._loop,
            settings.webhook_timeout_s,
            settings.webhook_retries,
            allow=settings.webhook_allow_hosts,
            secret=settings.webhook_secret,
        )
        self.lifecycle = JobLifecycle(self.store, self.metrics, webhooks)
        self.board = ProgressBoard(self.store)
        self.worker = {"host": host, "device": device_name}
        self.lease_s = settings.worker_lease_s
        self.stopping = False

    def run_job(self, job_id: str) -> None:
        """The task: run the job if it is still queued and this attempt is not claimed.
        A worker shutting down (``stop``) stops the job between steps and hands it back:
        the job is queued again (this attempt does not count) and its message goes back
        to the broker (``Reject``, acknowledged late) for another worker to take."""
        if self.stopping:  # a message taken while this worker shuts down goes straight back
            raise Reject("worker shutting down", requeue=True)
        job = self.store.get(job_id)
        if job is None or job.status != JobStatus.QUEUED:
            return  # canceled meanwhile, or a message redelivered after the job moved on
        claim = self.keys.claim(job)
        if not self.redis.set(claim, self.worker["host"], nx=True, ex=int(self.lease_s * 10)):
            return
        lease = _Lease(self.redis, self.keys.lease(job.id), self.lease_s)
        try:
            job = self.lifecycle.start(job, worker=self.worker)
            log.info("job %s started on %s", job.id, self.worker)
            report = self.board.begin(job.id)
            should_cancel = _CancelPoll(self.redis, self.keys.cancel(job.id))
            run_started_job(
                job,
                self.pipeline,
                self.lifecycle,
                self.metrics,
                report,
                should_cancel,
                lambda: self.stopping,
                live_stream=self.settings.live_stream,
            )
        finally:
            lease.stop()
            self.board.end(job.id)
        if self.stopping and self._handed_back(job.id):
            self.redis.delete(claim)  # the claim names this attempt number, which the next run reuses
            log.info("job %s handed back at shutdown", job.id)
            raise Reject("worker shutting down", requeue=True)

    def stop(self) -> None:
        """Celery's warm shutdown began (SIGTERM): the running job stops at its next step."""
        self.stopping = True

    def close(self) -> None:
        """After the last task: the webhooks still being sent (or waiting to retry) are
        delivered before the process exits, as the embedded service does at shutdown."""
        self.webhooks.flush(self.webhooks.longest_delivery_s())

    def _handed_back(self, job_id: str) -> bool:
        job = retry_store(lambda: self.store.get(job_id))
        return job is not None and job.status == JobStatus.QUEUED


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
        try:
            self.client.delete(self.key)
        except redis.RedisError:  # Redis away: the key expires on its own
            log.warning("could not remove lease %s; it expires in %.0f s", self.key, self.seconds)


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
            try:
                self._value = bool(self.client.exists(self.key))
            except redis.RedisError:  # Redis restarting: the job runs on; the flag is read again later
                log.warning("cancel flag %s unreadable; asking again in 0.5 s", self.key)
        return self._value
