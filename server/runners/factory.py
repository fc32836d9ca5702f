"""The one place that picks the back-end from the settings: one process (SQLite records,
this host's devices) or many hosts (``LATENTSYNC_BROKER_URL``: Redis records, Celery
workers). Everything else sees only the protocols: ``JobStore`` and ``JobRunner``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from server.jobs.folder import JobFolders
from server.jobs.lifecycle import JobLifecycle
from server.jobs.metrics import Metrics
from server.jobs.recorded_store import RecordedStore
from server.jobs.store import JobStore
from server.jobs.webhooks import WebhookSender
from server.runners.runner import JobRunner
from server.settings import Settings


@dataclass
class Backend:
    store: JobStore
    runner: JobRunner
    lifecycle: JobLifecycle
    metrics: Metrics
    webhooks: WebhookSender


def make_backend(settings: Settings, loop: asyncio.AbstractEventLoop) -> Backend:
    """``loop``: where webhooks are sent from (the service's event loop)."""
    metrics = Metrics()
    webhooks = WebhookSender(
        loop,
        settings.webhook_timeout_s,
        settings.webhook_retries,
        allow=settings.webhook_allow_hosts,
        secret=settings.webhook_secret,
    )
    store: JobStore
    runner: JobRunner
    if settings.broker_url:  # many hosts; Celery and redis are an optional extra, imported only here
        from server.jobs.redis_store import RedisJobStore
        from server.runners.celery_dispatcher import CeleryDispatcher

        redis_store = RedisJobStore(settings.broker_url)
        store = RecordedStore(redis_store)  # job.json in each job's folder, as in one process
        lifecycle = JobLifecycle(store, metrics, webhooks)
        runner = CeleryDispatcher(settings, redis_store, lifecycle)
    else:
        from latentsync_core.common.devices import resolve_devices
        from server.jobs.rebuild import open_store
        from server.runners.device_pool import DevicePool

        # A database that cannot be opened is rebuilt from the job folders' records first.
        store = RecordedStore(open_store(settings.data_dir / "jobs.sqlite3", JobFolders(settings.data_dir / "jobs")))
        lifecycle = JobLifecycle(store, metrics, webhooks)
        devices = resolve_devices(settings.gpu_ids, settings.device, settings.gpu_id)
        runner = DevicePool(settings, devices, store, metrics, lifecycle)
    return Backend(store=store, runner=runner, lifecycle=lifecycle, metrics=metrics, webhooks=webhooks)
