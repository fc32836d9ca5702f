"""Running one task in a worker: the same entry point for the local process pools and for
Ray. A CPU worker keeps only the config; a device worker also loads its models once.

Every outcome carries the worker time it took. An unexpected exception (a bug, a broken
installation) becomes an outcome with ``error`` set: reported, never recorded as a
decision, so the item is retried by the next run.
"""

from __future__ import annotations

import logging
import os
import signal
import time
import traceback

from latentsync_core.data.config import PreprocessConfig
from latentsync_core.data.items import Outcome, Task
from latentsync_core.data.models import load_device_models
from latentsync_core.data.stages import DeviceModels, runner

log = logging.getLogger(__name__)

_cfg: PreprocessConfig | None = None
_models: DeviceModels | None = None


def _quiet_interrupts() -> None:
    # Ctrl-C reaches the whole process group: the coordinator handles it and stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def init_cpu_worker(cfg: PreprocessConfig) -> None:
    global _cfg
    _quiet_interrupts()
    _cfg = cfg


def init_device_worker(cfg: PreprocessConfig, device: str, threads: int) -> None:
    global _cfg, _models
    _quiet_interrupts()
    _cfg = cfg
    _models = load_models_for(cfg, device, threads)


def load_models_for(cfg: PreprocessConfig, device: str, threads: int) -> DeviceModels:
    """A device worker's set-up: its torch threads (on the CPU) or its GPU, then its models."""
    import torch

    if device == "cpu":
        torch.set_num_threads(max(1, threads))
    else:
        torch.cuda.set_device(torch.device(device))
    return load_device_models(cfg, device, threads)


def warm_up() -> str:
    """Nothing: submitted first so that a device worker loads its models while the CPU
    stages make its first segments."""
    return "ready"


def run_task(task: Task) -> Outcome:
    """Entry point of pool workers (set up by one of the initialisers)."""
    if _cfg is None:
        raise RuntimeError("worker not initialised")
    return execute(task, _cfg, _models)


def execute(task: Task, cfg: PreprocessConfig, models: DeviceModels | None) -> Outcome:
    """Run ``task``'s stage; never raises for a problem with the item itself."""
    started = time.perf_counter()
    try:
        if task.stage.on_device and models is None:
            raise RuntimeError(f"stage {task.stage.label} needs a device worker")
        outcome = runner(task.stage)(task, cfg, models)
    except Exception as exc:  # reported by the coordinator; the item is retried next run
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        log.debug("stage %s failed on %s", task.stage.label, task.item_id, exc_info=True)
        outcome = Outcome(task.stage, task.item_id, False, "", {}, error=f"{detail} [pid {os.getpid()}]")
    outcome.seconds = time.perf_counter() - started
    return outcome
