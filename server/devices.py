"""Every device of this host: which ones (``LATENTSYNC_GPU_IDS``), one worker each, and the
pool that lends idle devices to a running job's windows.

Jobs go to the next free device in creation order (each worker takes the oldest queued
job when it is free). While no job waits, an idle device may be lent to a running job
(``window_split.py``); it comes back after its current window as soon as a job is queued.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import threading
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge

from latentsync_core.common.devices import DeviceSpec
from server.lifecycle import JobStatus

if TYPE_CHECKING:
    from latentsync_core.inference.factory import PipelineOptions
    from latentsync_core.inference.pipeline import LipSyncPipeline
    from server.job_store import JobStore
    from server.metrics import Metrics
    from server.settings import Settings
    from server.worker import GPUWorker


def device_options(options: PipelineOptions, spec: DeviceSpec) -> PipelineOptions:
    """The pipeline options of one device."""
    return dataclasses.replace(options, device=spec.device, gpu_id=spec.gpu_id)


def host_name(settings: Settings) -> str:
    return settings.worker_name or socket.gethostname()


class DevicePool:
    """The workers of this process, one per device, seen from outside as one worker (start,
    stop, wake, cancel, recover) and, once loaded, as one pipeline (``describe``,
    ``memory_stats``). It is also the ``DeviceLender`` of its workers' jobs."""

    def __init__(self, workers: list[GPUWorker], store: JobStore, metrics: Metrics, split: bool):
        self.workers, self.store, self.split = workers, store, split
        self._lock = threading.Lock()  # claims and loans: the event loop and job threads both ask
        self._lent: dict[int, GPUWorker] = {}  # id(pipeline) -> the idle worker whose device is lent
        self._loop: asyncio.AbstractEventLoop | None = None
        labels = ["device"]
        self.m_running = Gauge("latentsync_device_running", "1 while the device runs its own job", labels,
                               registry=metrics.registry)  # fmt: skip
        self.m_lent = Gauge("latentsync_device_lent", "1 while the device runs another device's job windows",
                            labels, registry=metrics.registry)  # fmt: skip
        self.m_jobs = Counter("latentsync_device_jobs", "Jobs a device ran", labels, registry=metrics.registry)
        self.m_memory = Gauge("latentsync_device_gpu_memory_bytes", "GPU memory per device", ["device", "kind"],
                              registry=metrics.registry)  # fmt: skip
        for worker in workers:
            worker.pool = self
            self.m_running.labels(worker.name).set(0)
            self.m_lent.labels(worker.name).set(0)

    # ---- the one-worker face the service and routes use -------------------------------
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for worker in self.workers:
            worker.start()

    def wake(self) -> None:
        for worker in self.workers:
            worker.wake()

    def request_cancel(self, job_id: str) -> None:
        for worker in self.workers:
            worker.request_cancel(job_id)

    async def stop(self, timeout: float = 30.0) -> None:
        await asyncio.gather(*(worker.stop(timeout) for worker in self.workers))

    def recover(self) -> None:
        self.workers[0].recover()  # one pass over the store is enough

    @property
    def running_id(self) -> str | None:
        return next((w.running_id for w in self.workers if w.running_id), None)

    @property
    def seconds_per_frame(self) -> float | None:
        """Of the service as a whole: N devices serve N frames in a device's time for one."""
        known = [w.seconds_per_frame for w in self.workers if w.seconds_per_frame is not None]
        return sum(known) / len(known) / len(self.workers) if known else None

    def set_pipelines(self, pipelines: list[Any]) -> None:
        for worker, pipeline in zip(self.workers, pipelines, strict=True):
            worker.pipeline = pipeline
        self.wake()

    # ---- claims (event loop) ----------------------------------------------------------
    def claim(self, worker: GPUWorker) -> bool:
        """May ``worker`` start a job now (it is not lent)? Then it is busy until ``done``."""
        with self._lock:
            if worker.lent or worker.busy:
                return False
            worker.busy = True
        self.m_running.labels(worker.name).set(1)
        return True

    def done(self, worker: GPUWorker) -> None:
        with self._lock:
            worker.busy = False
        self.m_running.labels(worker.name).set(0)
        self.m_jobs.labels(worker.name).inc()

    # ---- DeviceLender (job threads) ---------------------------------------------------
    def lender_for(self, worker: GPUWorker) -> DevicePool | None:
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
    def pipelines(self) -> list[Any]:
        return [w.pipeline for w in self.workers if w.pipeline is not None]

    def describe(self) -> dict:
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
