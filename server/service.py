"""What the routes share: settings, job store, lifecycle, the device workers (one per device,
seen as one ``worker``), the loaded pipelines (seen as one ``pipeline``)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from server.devices import DevicePool, device_options, host_name, resolve_devices
from server.errors import APIError, insufficient_storage
from server.jobs.disk import storage_state
from server.jobs.folder import JobFolders
from server.jobs.housekeeping import Housekeeping
from server.jobs.lifecycle import JobLifecycle
from server.jobs.metrics import Metrics
from server.jobs.model import Job, JobStatus
from server.jobs.progress import ProgressBoard
from server.jobs.sqlite_store import SQLiteJobStore
from server.jobs.store import StoreCheck
from server.jobs.webhooks import WebhookSender
from server.schemas import JobParams
from server.settings import Settings
from server.worker import GPUWorker

log = logging.getLogger("latentsync.server")


class Service:
    def __init__(self, settings: Settings, loop: asyncio.AbstractEventLoop):
        self.settings = settings
        self.folders = JobFolders(settings.data_dir / "jobs")
        self.celery_mode = bool(settings.broker_url)  # many hosts: records in Redis, jobs on Celery
        if self.celery_mode:
            from server.jobs.redis_store import RedisJobStore

            self.store: Any = RedisJobStore(settings.broker_url)
        else:
            self.store = SQLiteJobStore(settings.data_dir / "jobs.sqlite3")
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
        self.store_check = StoreCheck(self.store)
        self.housekeeping = Housekeeping(self.store, self.folders, settings.result_ttl_s, settings.record_ttl_s)
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

    def database_state(self) -> str:
        return self.store_check.state()
