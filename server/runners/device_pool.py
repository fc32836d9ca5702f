"""The devices of this process, one worker each (``device_worker.py``), as one
:class:`~server.runners.runner.JobRunner`, and the lender of idle devices to a running job's
windows.

Jobs go to the next free device in creation order (each worker takes the oldest queued
job when it is free). While no job waits, an idle device may be lent to a running job
(``window_split.py``); it comes back after its current window as soon as a job is queued.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge

from latentsync_core.common.devices import DeviceSpec
from server.jobs.lifecycle import JobLifecycle
from server.jobs.metrics import Metrics
from server.jobs.model import Job, JobStatus
from server.jobs.progress import ProgressBoard
from server.jobs.store import JobStore
from server.runners.device_worker import DeviceWorker
from server.runners.devices import device_options, host_name
from server.runners.runner import FastPath, LoadState
from server.settings import Settings

if TYPE_CHECKING:
    from latentsync_core.inference.pipeline import LipSyncPipeline

log = logging.getLogger("latentsync.server")


class DevicePool:
    """The workers of this process, one per device, as one :class:`JobRunner` (load, start,
    stop, submit, cancel, recover; once loaded ``describe`` and ``memory_stats``). It is also
    the ``DeviceLender`` of its workers' jobs and hands out their claims (``DeviceClaims``)."""

    def __init__(
        self, settings: Settings, specs: list[DeviceSpec], store: JobStore, metrics: Metrics, lifecycle: JobLifecycle
    ):
        self.settings, self.specs, self.store, self.lifecycle = settings, specs, store, lifecycle
        self.split = settings.split_windows == "auto"
        self.board = ProgressBoard(store)
        host = host_name(settings)
        self.workers = [DeviceWorker(store, metrics, lifecycle, self.board, spec.name, host) for spec in specs]
        self.state: LoadState = "loading"
        self.load_error: str | None = None
        self.fast_path: FastPath = "off"
        self._lock = threading.Lock()  # claims and loans: the event loop and job threads both ask
        self._lent: dict[int, DeviceWorker] = {}  # id(pipeline) -> the idle worker whose device is lent
        self._loop: asyncio.AbstractEventLoop | None = None
        labels = ["device"]
        registry = metrics.registry
        self.m_running = Gauge(
            "latentsync_device_running", "1 while the device runs its own job", labels, registry=registry
        )
        self.m_lent = Gauge(
            "latentsync_device_lent", "1 while the device runs another device's job windows", labels, registry=registry
        )
        self.m_jobs = Counter("latentsync_device_jobs", "Jobs a device started", labels, registry=registry)
        self.m_memory = Gauge(
            "latentsync_device_gpu_memory_bytes", "GPU memory per device", ["device", "kind"], registry=registry
        )
        for worker in self.workers:
            worker.pool = self
            worker.live_stream = settings.live_stream
            self.m_running.labels(worker.name).set(0)
            self.m_lent.labels(worker.name).set(0)
            self.m_jobs.labels(worker.name)  # every device's series from the start, at 0

    # ---- models (on a thread: /health answers meanwhile) ------------------------------
    def load(self) -> None:
        """One model copy per device; a failure is reported by /ready (the process stays up
        for diagnosis)."""
        from latentsync_core.inference import build_pipeline

        options = self.settings.pipeline_options()
        try:
            pipelines = [build_pipeline(device_options(options, spec)) for spec in self.specs]
        except Exception as exc:
            log.exception("model loading failed")
            self.state, self.load_error = "error", str(exc)
            return
        self.set_pipelines(pipelines)
        self.state = "ready"
        log.info("ready (%s)", self.describe())
        if pipelines[0].accel.compile:  # a daemon thread: shutting down never waits for a compile
            threading.Thread(target=self.compile_fast_path, name="compile", daemon=True).start()

    def compile_fast_path(self) -> None:
        """Compile after the service is ready (jobs meanwhile run eagerly); the kernels are
        cached on disk, so a restart takes seconds instead of minutes."""
        from latentsync_core.inference.compile_cache import CompileArtifacts

        self.fast_path = "compiling"
        try:
            artifacts = CompileArtifacts(self.settings.compile_artifacts_dir)
            seconds = sum(pipeline.prepare_fast_path(artifacts) for pipeline in self.pipelines)
            self.fast_path = "ready"
            log.info("fast path ready (compiled in %.1f s)", seconds)
        except Exception:  # the eager path keeps serving
            log.exception("compiling the fast path failed; serving with the eager path")
            self.fast_path = "failed"

    def set_pipelines(self, pipelines: list[LipSyncPipeline]) -> None:
        for worker, pipeline in zip(self.workers, pipelines, strict=True):
            worker.pipeline = pipeline
        self.wake()

    # ---- the JobRunner face -----------------------------------------------------------
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for worker in self.workers:
            worker.start()

    def submit(self, job: Job) -> None:
        self.wake()  # the job is in the store: the first free worker takes the oldest

    def wake(self) -> None:
        for worker in self.workers:
            worker.wake()

    def cancel(self, job_id: str) -> None:
        for worker in self.workers:
            worker.request_cancel(job_id)

    def progress(self, job_id: str) -> dict[str, Any] | None:
        return self.board.get(job_id)

    async def stop(self, timeout: float = 30.0) -> None:
        await asyncio.gather(*(worker.stop(timeout) for worker in self.workers))

    def recover(self) -> None:
        """After a restart: a job that was running runs once more, then fails INTERRUPTED."""
        for job_id in self.store.ids_with_status(JobStatus.RUNNING):
            job = self.store.get(job_id)
            if job is not None:
                self.lifecycle.interrupt(job)

    @property
    def running_id(self) -> str | None:
        return next((w.running_id for w in self.workers if w.running_id), None)

    @property
    def seconds_per_frame(self) -> float | None:
        """Of the service as a whole: N devices serve N frames in a device's time for one."""
        known = [w.seconds_per_frame for w in self.workers if w.seconds_per_frame is not None]
        return sum(known) / len(known) / len(self.workers) if known else None

    # ---- claims (event loop) ----------------------------------------------------------
    def claim(self, worker: DeviceWorker) -> bool:
        """May ``worker`` start a job now (it is not lent)? Then it is busy until ``done``."""
        with self._lock:
            if worker.lent or worker.busy:
                return False
            worker.busy = True
        self.m_running.labels(worker.name).set(1)
        return True

    def started(self, worker: DeviceWorker) -> None:
        """``worker`` started a job (counted before the job can end: a client that saw it
        end finds it counted)."""
        self.m_jobs.labels(worker.name).inc()

    def done(self, worker: DeviceWorker) -> None:
        with self._lock:
            worker.busy = False
        self.m_running.labels(worker.name).set(0)

    # ---- DeviceLender (job threads) ---------------------------------------------------
    def lender_for(self, worker: DeviceWorker) -> DevicePool | None:
        """Itself, when windows may be spread over several devices."""
        return self if self.split and len(self.workers) > 1 else None

    def _jobs_waiting(self) -> bool:
        return self.store.count(JobStatus.QUEUED) > 0

    def borrow(self) -> list[LipSyncPipeline]:
        if self._jobs_waiting():
            return []
        lent = []
        with self._lock:
            for worker in self.workers:
                if worker.pipeline is not None and not worker.busy and not worker.lent and not worker.stopping:
                    worker.lent = True
                    self._lent[id(worker.pipeline)] = worker
                    lent.append(worker)
        for worker in lent:
            self.m_lent.labels(worker.name).set(1)
        return [w.pipeline for w in lent]

    def wanted_back(self, pipeline: LipSyncPipeline) -> bool:
        worker = self._lent.get(id(pipeline))
        return worker is None or worker.stopping or self._jobs_waiting()

    def give_back(self, pipeline: LipSyncPipeline) -> None:
        with self._lock:
            worker = self._lent.pop(id(pipeline), None)
            if worker is None:
                return
            worker.lent = False
        self.m_lent.labels(worker.name).set(0)
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(worker.wake)

    # ---- what /ready and /metrics show ------------------------------------------------
    @property
    def pipelines(self) -> list[LipSyncPipeline]:
        return [w.pipeline for w in self.workers if w.pipeline is not None]

    def describe(self) -> dict[str, Any]:
        """The first device's description (device, dtype, weights, ...) and every device's."""
        pipelines = self.pipelines
        info = dict(pipelines[0].describe()) if pipelines else {}
        info["devices"] = [
            {
                "name": w.name,
                "device": w.pipeline.describe()["device"] if w.pipeline is not None else None,
                "device_name": w.pipeline.describe()["device_name"] if w.pipeline is not None else None,
                "loaded": w.pipeline is not None,
                "running": w.running_id,
                "lent": w.lent,
            }
            for w in self.workers
        ]
        return info

    def memory_stats(self) -> dict[str, int]:
        """GPU memory summed over the devices (each device's is set in its own gauge)."""
        total: dict[str, int] = {}
        for worker in self.workers:
            if worker.pipeline is None:
                continue
            for kind, value in worker.pipeline.memory_stats().items():
                self.m_memory.labels(worker.name, kind).set(value)
                total[kind] = total.get(kind, 0) + value
        return total
