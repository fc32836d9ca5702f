"""What the routes share: settings, job store, lifecycle, the device workers (one per device,
seen as one ``worker``), the loaded pipelines (seen as one ``pipeline``)."""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from latentsync_core.common.devices import resolve_devices
from server.devices import DevicePool, device_options, host_name
from server.errors import APIError
from server.job_store import Job, JobStore
from server.lifecycle import JobLifecycle, JobStatus
from server.metrics import Metrics
from server.progress import ProgressBoard
from server.schemas import JobParams
from server.settings import Settings
from server.storage import insufficient_storage, storage_state
from server.webhooks import WebhookSender
from server.worker import GPUWorker

log = logging.getLogger("latentsync.server")


class Service:
    def __init__(self, settings: Settings, loop: asyncio.AbstractEventLoop):
        self.settings = settings
        self.jobs_dir = settings.data_dir / "jobs"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.celery_mode = bool(settings.broker_url)  # many hosts: records in Redis, jobs on Celery
        if self.celery_mode:
            from server.redis_store import RedisJobStore

            self.store: Any = RedisJobStore(settings.broker_url)
        else:
            self.store = JobStore(settings.data_dir / "jobs.sqlite3")
        self.metrics = Metrics()
        self.board = ProgressBoard(self.store)
        webhooks = WebhookSender(loop, settings.webhook_timeout_s, settings.webhook_retries,
                                 allow=settings.webhook_allow_hosts)  # fmt: skip
        self.webhook_policy = webhooks.policy
        self.lifecycle = JobLifecycle(self.store, self.metrics, webhooks)
        self.worker: Any
        if self.celery_mode:
            from server.queue_celery import CeleryDispatcher

            self.devices = []
            self.worker = CeleryDispatcher(settings, self.store, self.lifecycle)
        else:
            self.devices = resolve_devices(settings.gpu_ids, settings.device, settings.gpu_id)
            host = host_name(settings)
            workers = [GPUWorker(self.store, self.metrics, self.lifecycle, self.board, spec.name, host)
                       for spec in self.devices]  # fmt: skip
            self.worker = DevicePool(workers, self.store, self.metrics, split=settings.split_windows == "auto")
        self.pipeline: Any = None  # the DevicePool once every device's models are loaded
        self.state = "loading"
        self.fast_path = "off"  # off, compiling, ready, failed
        self.load_error: str | None = None
        self.stopping = False
        self.input_roots = [p.resolve() for p in settings.input_dirs]
        self._db_state: tuple[float, str] = (0.0, "unchecked")  # (when, what quick_check said)
        self._admission = threading.Lock()
        self._reserved = 0  # queue slots held by uploads still being received or checked

    # ---- model loading (in a thread: /health answers meanwhile) -----------------------
    def load_models(self) -> None:
        from latentsync_core.inference import build_pipeline

        if self.celery_mode:  # the workers hold the models
            self.pipeline, self.state = self.worker, "ready"
            return
        options = self.settings.pipeline_options()
        try:  # one model copy per device
            pipelines = [build_pipeline(device_options(options, spec)) for spec in self.devices]
        except Exception as exc:  # reported by /ready; the process stays up for diagnosis
            log.exception("model loading failed")
            self.state, self.load_error = "error", str(exc)
            return
        self.worker.set_pipelines(pipelines)
        self.pipeline = self.worker
        self.state = "ready"
        log.info("ready (%s)", self.worker.describe())
        if pipelines[0].accel.compile:  # a daemon thread: shutting down never waits for a compile
            threading.Thread(target=self.compile_fast_path, name="compile", daemon=True).start()

    def compile_fast_path(self) -> None:
        """Compile after the service is ready (jobs meanwhile run eagerly); the kernels are
        cached on disk, so a restart takes seconds instead of minutes."""
        from latentsync_core.inference.compile_cache import CompileArtifacts

        self.fast_path = "compiling"
        try:
            artifacts = CompileArtifacts(self.settings.compile_artifacts_dir)
            seconds = sum(pipeline.prepare_fast_path(artifacts) for pipeline in self.worker.pipelines)
            self.fast_path = "ready"
            log.info("fast path ready (compiled in %.1f s)", seconds)
        except Exception:  # the eager path keeps serving
            log.exception("compiling the fast path failed; serving with the eager path")
            self.fast_path = "failed"

    # ---- helpers for routes -----------------------------------------------------------
    def get_job(self, job_id: str) -> Job:
        """The record, whoever owns it (the routes go through ``deps.get_job``, which checks that)."""
        job = self.store.get(job_id) if len(job_id) <= 64 else None
        if job is None:
            raise self.job_not_found(job_id)
        return job

    @staticmethod
    def job_not_found(job_id: str) -> APIError:
        return APIError(404, "JOB_NOT_FOUND", f"no job with id '{job_id[:64]}'")

    @contextmanager
    def admission(self) -> Iterator[None]:
        """Hold a queue slot while a job is received, checked and inserted: the check and the
        reservation are one step under a lock (queued + reserved < max_queue), so concurrent
        uploads cannot all pass a check made before their bodies arrive. The slot is released
        when the upload fails, or once the job is in the store (then it counts as queued)."""
        storage = self.storage_state()
        if storage != "ok":  # before the body is read: the upload would fill the disk further
            raise insufficient_storage(storage)
        with self._admission:
            waiting = self.store.count(JobStatus.QUEUED) + self._reserved
            if waiting >= self.settings.max_queue:
                retry = int(self.estimate_wait(waiting)) or 60
                raise APIError(429, "QUEUE_FULL", f"{waiting} jobs are waiting; try again later",
                               {"Retry-After": str(retry)})  # fmt: skip
            self._reserved += 1
        try:
            yield
        finally:
            with self._admission:
                self._reserved -= 1

    def resolve_params(self, params: JobParams) -> dict[str, Any]:
        """The job's parameters: the request's, else the service defaults."""
        defaults = self.settings.default_params()
        return {name: getattr(params, name) if getattr(params, name) is not None else value
                for name, value in defaults.items()}  # fmt: skip

    def allowed_input(self, raw: str) -> Path:
        """A path from a JSON request, accepted only inside a configured input folder."""
        if not self.input_roots:
            raise APIError(403, "PATH_INPUT_DISABLED", "path inputs are disabled (set LATENTSYNC_INPUT_DIRS)")
        if "\x00" in raw:
            raise APIError(400, "INVALID_PATH", "invalid path")
        try:
            path = Path(raw).resolve()  # resolves '..' and symlinks before the check
            if not any(path.is_relative_to(root) for root in self.input_roots):
                raise APIError(403, "PATH_NOT_ALLOWED", "the path is outside the allowed input folders")
            if not path.is_file():
                raise APIError(400, "FILE_NOT_FOUND", f"no such file: {Path(raw).name[:255]}")
        except OSError as exc:  # a name too long, a symlink loop, ...
            raise APIError(400, "INVALID_PATH", f"invalid path ({exc.strerror or type(exc).__name__})") from exc
        return path

    def estimate_wait(self, position: int) -> float:
        """Seconds until a job at ``position`` in the queue starts, from recent throughput."""
        spf = self.worker.seconds_per_frame
        if spf is None or position <= 0:
            return 0.0
        return round(position * spf * 250, 1)  # a typical job is ~10 s of video

    def storage_state(self) -> str:
        """``"ok"`` while the data folder has at least ``min_free_mb`` free, else why not (a
        ``statvfs``: cheap enough for every upload)."""
        return storage_state(self.settings.data_dir, int(self.settings.min_free_mb * 2**20))

    def database_state(self, max_age_s: float = 5.0) -> str:
        """``"ok"`` when the job database is readable throughout; checked at most every
        ``max_age_s`` (``quick_check`` reads every page). Blocking: call it off the event loop."""
        checked_at, state = self._db_state
        if time.monotonic() - checked_at > max_age_s or state != "ok":
            state = self.store.check()
            if state != "ok":
                log.error("the job database is damaged: %s", state)
            self._db_state = (time.monotonic(), state)
        return state

    def remove_orphans(self) -> int:
        """At start-up (no upload is in flight yet): job folders without a record, left by a
        kill -9 during an upload or a delete, are removed."""
        if self.celery_mode:  # another API node may be receiving an upload into the shared folder
            return 0
        known = self.store.all_ids()
        removed = 0
        for child in self.jobs_dir.iterdir():
            if child.name not in known:
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
                removed += 1
        if removed:
            log.info("removed %d orphaned job folders", removed)
        return removed

    async def cleanup_loop(self) -> None:
        """Remove results older than their retention time, and job records older than theirs."""
        while True:
            try:
                await asyncio.to_thread(self.cleanup_once)
            except Exception:  # never let housekeeping kill the service
                log.exception("cleanup failed")
            await asyncio.sleep(self.settings.cleanup_interval_s)

    def cleanup_once(self) -> None:
        now = time.time()
        for job in self.store.expired_results(now - self.settings.result_ttl_s):
            shutil.rmtree(job.work_dir, ignore_errors=True)
            self.store.update(job.id, result_expired=True)
        for job in self.store.purge_finished(now - self.settings.record_ttl_s):
            shutil.rmtree(job.work_dir, ignore_errors=True)
