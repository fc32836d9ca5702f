"""The Ray engine: the same tasks, on a Ray cluster (an optional extra: ``pip install
"latentsync-service[ray]"``; imported only when this engine is chosen).

A task of a CPU stage is a Ray task; the device stages go to a fixed pool of device actors
(one per GPU, or one on the CPUs when the cluster has none), each loading its models once.
Like the local engine it decides nothing: ``engine.drive`` hands it what the scheduler
releases and gives the outcomes back, and the driver alone writes the manifest, so a run
resumes from a manifest written by either engine.

On a cluster, the input and output folders must be visible at the same paths on every
node (a shared file system) and the project installed on every node.
"""

from __future__ import annotations

import os
from typing import Any

from latentsync_core.common.errors import CodedError
from latentsync_core.data.config import PreprocessConfig, parse_gpus
from latentsync_core.data.items import Outcome, Task
from latentsync_core.data.workers import execute, load_models_for

# Memory a CPU task reserves (ffmpeg transcoding a 1080p source peaks near this), so that
# Ray does not start more of them on a node than its memory holds.
SOURCE_TASK_MEMORY = 512 * 2**20


def run_cpu_task(task: Task, cfg: PreprocessConfig) -> Outcome:
    return execute(task, cfg, None)


class DeviceWorker:
    """A Ray actor per device: loads the models once, then runs device-stage tasks."""

    def __init__(self, cfg: PreprocessConfig, threads: int):
        import torch

        # Ray shows each GPU actor only its own GPU.
        device = "cuda:0" if torch.cuda.is_available() and torch.cuda.device_count() > 0 else "cpu"
        self.cfg = cfg
        self.models = load_models_for(cfg, device, threads)

    def run(self, task: Task) -> Outcome:
        return execute(task, self.cfg, self.models)


class RayEngine:
    """An :class:`~latentsync_core.data.engine.Engine` on Ray tasks and actors."""

    name = "ray"

    def __init__(self, cfg: PreprocessConfig):
        try:
            import ray
        except ImportError as exc:
            raise CodedError("RAY_UNAVAILABLE", 'engine ray needs Ray: pip install "latentsync-service[ray]"') from exc
        self.cfg = cfg
        self._started = False
        if not ray.is_initialized():
            # Workers need the weights mode and paths the driver was given.
            env = {k: v for k, v in os.environ.items() if k.startswith("LATENTSYNC_")}
            options: dict[str, Any] = {"runtime_env": {"env_vars": env}, "log_to_driver": False}
            if cfg.ray_address:
                options["address"] = cfg.ray_address
            else:
                options |= {"num_cpus": cfg.workers or None, "include_dashboard": False}
            try:
                ray.init(**options)
            except Exception as exc:  # connection and start-up errors come in many types
                raise CodedError("RAY_START_FAILED", f"cannot start or reach Ray ({exc})") from exc
            self._started = True
        resources = ray.cluster_resources()
        wanted = parse_gpus(cfg.gpus)
        self.gpus = int(resources.get("GPU", 0)) if wanted is None else len(wanted)
        if self.gpus > int(resources.get("GPU", 0)):
            raise CodedError("GPU_UNAVAILABLE", f"{self.gpus} GPU(s) requested, the Ray cluster has fewer")
        self.workers = int(resources.get("CPU", 1))
        self.devices = [f"ray-gpu{i}" for i in range(self.gpus)] or ["cpu"]
        self._cpu_fn: Any = None
        self._actors: list[Any] = []
        self._load: list[int] = []
        self._inflight: dict[Any, tuple[Task, int]] = {}  # object ref -> (task, actor index or -1)

    def start(self, warm_devices: bool) -> None:
        import ray

        self._cpu_fn = ray.remote(num_cpus=1, memory=SOURCE_TASK_MEMORY)(run_cpu_task)
        if self.gpus:
            actor, threads = ray.remote(num_gpus=1, num_cpus=1)(DeviceWorker), 2
        else:  # one actor on the CPUs, leaving at least one CPU to the CPU stages
            threads = max(1, min(self.workers - 1, os.cpu_count() or 1))
            actor = ray.remote(num_cpus=min(threads, self.workers - 1))(DeviceWorker)
        # Actors load their models as soon as they are created: warming is implicit.
        self._actors = [actor.remote(self.cfg, threads) for _ in range(max(1, self.gpus))]
        self._load = [0] * len(self._actors)

    def cpu_slots(self) -> int:
        running = sum(1 for _, i in self._inflight.values() if i < 0)
        return 2 * self.workers - running

    def submit(self, task: Task) -> None:
        if task.stage.on_device:
            i = min(range(len(self._actors)), key=self._load.__getitem__)
            self._load[i] += 1
            self._inflight[self._actors[i].run.remote(task)] = (task, i)
        else:
            self._inflight[self._cpu_fn.remote(task, self.cfg)] = (task, -1)

    def busy(self) -> bool:
        return bool(self._inflight)

    def wait(self) -> list[tuple[Task, Outcome]]:
        import ray

        refs = list(self._inflight)
        ray.wait(refs, num_returns=1)
        done, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        finished = []
        for ref in done:
            task, i = self._inflight.pop(ref)
            if i >= 0:
                self._load[i] -= 1
            try:
                finished.append((task, ray.get(ref)))
            except Exception as exc:  # a Ray task or actor died: what was recorded stays
                raise CodedError(
                    "RAY_FAILED",
                    f"the Ray pipeline failed during stage {task.stage.label} of {task.item_id} "
                    f"({type(exc).__name__}: {exc}); rerun to resume",
                ) from exc
        return finished

    def stop(self, clean: bool) -> None:
        import ray

        if not clean:
            for ref, (_, i) in self._inflight.items():
                if i < 0:
                    ray.cancel(ref, force=True)
        for actor in self._actors:
            ray.kill(actor)
        self._actors, self._load, self._inflight = [], [], {}
        if self._started:
            ray.shutdown()
            self._started = False
