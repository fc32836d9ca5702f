"""The local engine: a process pool for the CPU stages and one worker process per device
(GPU, or the CPU when there is none) for the model stages (run by ``engine.drive``).

Items stream: as soon as a source's shots are known its segments are handed to the
device workers, while the pool goes on resampling other sources, so the devices work
during the CPU stages instead of after them (upstream runs each stage over the whole
dataset in turn). Device tasks go to the worker with the fewest queued tasks; each
worker's executor queue is the feed, and the models stay loaded for the whole run.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from latentsync_core.common.errors import CodedError
from latentsync_core.data.config import PreprocessConfig
from latentsync_core.data.items import Outcome, Task
from latentsync_core.data.workers import init_cpu_worker, init_device_worker, run_task, warm_up


def device_threads(cfg: PreprocessConfig, devices: list[str]) -> int:
    """Detection (and, on the CPU, torch) threads per device worker."""
    if cfg.face_detect_threads > 0:
        return cfg.face_detect_threads
    cores = os.cpu_count() or 1
    return max(1, (cores - 1) // len(devices)) if devices != ["cpu"] else max(1, cores - 1)


class LocalEngine:
    """An :class:`~latentsync_core.data.engine.Engine` of local processes."""

    name = "local"

    def __init__(self, cfg: PreprocessConfig, devices: list[str]):
        self.cfg, self.devices = cfg, devices
        self.workers = cfg.worker_count()
        self._cpu: ProcessPoolExecutor | None = None
        self._devs: list[ProcessPoolExecutor] = []
        self._inflight: dict[Future, tuple[Task, int]] = {}  # future -> (task, device index or -1)
        self._load: list[int] = []  # queued tasks per device worker
        self._warming: dict[Future, str] = {}

    def start(self, warm_devices: bool) -> None:
        ctx = mp.get_context("spawn")  # CUDA and forked torch state do not mix
        threads = device_threads(self.cfg, self.devices)
        self._cpu = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=init_cpu_worker, initargs=(self.cfg,))
        self._devs = [
            ProcessPoolExecutor(1, mp_context=ctx, initializer=init_device_worker, initargs=(self.cfg, d, threads))
            for d in self.devices
        ]
        self._load = [0] * len(self._devs)
        if warm_devices:  # device workers load their models while the CPU stages make the first segments
            self._warming = {p.submit(warm_up): d for p, d in zip(self._devs, self.devices, strict=True)}

    def cpu_slots(self) -> int:
        running = sum(1 for _, i in self._inflight.values() if i < 0)
        return 2 * self.workers - running  # two per process: no idle gaps

    def submit(self, task: Task) -> None:
        if task.stage.on_device:  # to the device worker with the fewest queued tasks
            i = min(range(len(self._devs)), key=self._load.__getitem__)
            self._load[i] += 1
            self._inflight[self._devs[i].submit(run_task, task)] = (task, i)
        else:
            assert self._cpu is not None, "start() first"
            self._inflight[self._cpu.submit(run_task, task)] = (task, -1)

    def busy(self) -> bool:
        return bool(self._inflight)

    def wait(self) -> list[tuple[Task, Outcome]]:
        for future in [f for f in self._warming if f.done()]:
            device = self._warming.pop(future)
            try:
                future.result()
            except BrokenProcessPool as exc:
                raise CodedError(
                    "WORKER_CRASHED", f"the device worker for {device} could not start (its error is above)"
                ) from exc
        done, _ = wait(self._inflight, return_when=FIRST_COMPLETED)
        finished = []
        for future in done:
            task, i = self._inflight.pop(future)
            if i >= 0:
                self._load[i] -= 1
            try:
                finished.append((task, future.result()))
            except BrokenProcessPool as exc:
                where = self.devices[i] if i >= 0 else "CPU pool"
                raise CodedError(
                    "WORKER_CRASHED",
                    f"a worker process ({where}) died during stage {task.stage.label} of {task.item_id} "
                    "(out of memory?); rerun to resume",
                ) from exc
        return finished

    def stop(self, clean: bool) -> None:
        pools = [p for p in (self._cpu, *self._devs) if p is not None]
        for pool in pools:
            if not clean:  # interrupted or failed: stop running tasks now, not when they end
                for proc in list(getattr(pool, "_processes", {}).values()):
                    proc.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
        self._cpu, self._devs, self._inflight, self._warming = None, [], {}, {}
