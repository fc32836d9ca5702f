"""The local engine: a process pool for the CPU stages and one worker process per device
(GPU, or the CPU when there is none) for the model stages.

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
from latentsync_core.data.items import Task
from latentsync_core.data.scheduler import Scheduler
from latentsync_core.data.workers import init_cpu_worker, init_device_worker, run_task, warm_up


def device_threads(cfg: PreprocessConfig, devices: list[str]) -> int:
    """Detection (and, on the CPU, torch) threads per device worker."""
    if cfg.face_detect_threads > 0:
        return cfg.face_detect_threads
    cores = os.cpu_count() or 1
    return max(1, (cores - 1) // len(devices)) if devices != ["cpu"] else max(1, cores - 1)


class LocalEngine:
    name = "local"

    def __init__(self, cfg: PreprocessConfig, devices: list[str]):
        self.cfg, self.devices = cfg, devices
        self.workers = cfg.worker_count()

    def run(self, sched: Scheduler) -> None:
        ctx = mp.get_context("spawn")  # CUDA and forked torch state do not mix
        threads = device_threads(self.cfg, self.devices)
        cpu = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=init_cpu_worker, initargs=(self.cfg,))
        devs = [
            ProcessPoolExecutor(1, mp_context=ctx, initializer=init_device_worker, initargs=(self.cfg, d, threads))
            for d in self.devices
        ]
        inflight: dict[Future, tuple[Task, int]] = {}  # future -> (task, device index or -1)
        load = [0] * len(devs)
        clean = False
        try:
            # Device workers load their models while the CPU stages make the first segments.
            warming = {} if sched.idle() else {p.submit(warm_up): d for p, d in zip(devs, self.devices, strict=True)}
            while True:
                for task in sched.take_device():
                    i = min(range(len(devs)), key=load.__getitem__)
                    load[i] += 1
                    inflight[devs[i].submit(run_task, task)] = (task, i)
                busy = sum(1 for _, i in inflight.values() if i < 0)
                for task in sched.take_cpu(2 * self.workers - busy):  # two per process: no idle gaps
                    inflight[cpu.submit(run_task, task)] = (task, -1)
                if not inflight:
                    break
                for future in [f for f in warming if f.done()]:
                    device = warming.pop(future)
                    try:
                        future.result()
                    except BrokenProcessPool as exc:
                        raise CodedError(
                            "WORKER_CRASHED", f"the device worker for {device} could not start (its error is above)"
                        ) from exc
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                for future in done:
                    task, i = inflight.pop(future)
                    if i >= 0:
                        load[i] -= 1
                    try:
                        outcome = future.result()
                    except BrokenProcessPool as exc:
                        where = self.devices[i] if i >= 0 else "CPU pool"
                        raise CodedError(
                            "WORKER_CRASHED",
                            f"a worker process ({where}) died during stage {task.stage} of {task.item_id} "
                            "(out of memory?); rerun to resume",
                        ) from exc
                    sched.on_outcome(task, outcome)
            clean = True
        finally:
            for pool in (cpu, *devs):
                if not clean:  # interrupted or failed: stop running tasks now, not when they end
                    for proc in list(getattr(pool, "_processes", {}).values()):
                        proc.terminate()
                pool.shutdown(wait=True, cancel_futures=True)
