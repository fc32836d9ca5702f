"""The Ray engine: the same stage code on a Ray cluster, through Ray Data (an optional extra:
``pip install "ray[data]"``; imported only when this engine is chosen).

Each source runs stages 1-3 as one Ray Data task, which then emits its segments; a fixed
pool of device actors (one per GPU, models loaded once) runs stages 5-7 on each segment.
Ray Data streams rows between the two, so GPUs start as soon as the first segments exist.
The driver alone writes the manifest: every row that comes back carries the outcomes of
the stages it went through, recorded (and stage 4 planned) by the same scheduler as the
local engine; a resumed run therefore starts each item at its first undecided stage.

On a cluster, the input and output folders must be visible at the same paths on every
node (a shared file system) and the project installed on every node.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from typing import Any

from latentsync_core.common.errors import CodedError
from latentsync_core.data.config import PreprocessConfig, parse_gpus
from latentsync_core.data.items import Outcome, Task
from latentsync_core.data.layout import Layout
from latentsync_core.data.scheduler import Scheduler
from latentsync_core.data.segments import plan_segments
from latentsync_core.data.tasks import clip_task, source_task
from latentsync_core.data.workers import execute

# Memory a source task reserves (ffmpeg transcoding a 1080p source peaks near this). It also
# keeps Ray Data from fusing the CPU stages into the device actors (fusion needs equal
# resource requests), where they would run one at a time.
SOURCE_TASK_MEMORY = 512 * 2**20
MAX_PASSES = 4  # a pass re-makes missing intermediates; more than this means something is off


def _row(kind: str, item: str, source: str, payload: Any) -> dict[str, str]:
    # Plain strings only: every row has the same Arrow schema.
    return {"kind": kind, "item": item, "source": source, "payload": json.dumps(payload)}


def source_chain(row: dict[str, str], cfg: PreprocessConfig, root: str) -> list[dict[str, str]]:
    """Stages 1-3 of one source from its first undecided stage, then its segments' rows."""
    layout, spec = Layout(root), json.loads(row["payload"])
    task = Task(**spec["task"])
    made = {k: task.args[k] for k in ("width", "height", "audio_samples")} if task.stage == 3 else None
    outcomes = []
    while True:
        outcome = execute(task, cfg, None)
        outcomes.append(asdict(outcome))
        if outcome.error or not outcome.passed or not spec["chain"] or task.stage == 3:
            break
        if task.stage == 2:
            made = outcome.measurements
        task = source_task(task.stage + 1, task.item_id, spec["path"], layout, made)
    src = row["item"]
    rows = [_row("source", src, src, outcomes)]
    last = outcomes[-1]
    if spec["chain"] and last["stage"] == 3 and last["passed"] and not last["error"]:
        for s in plan_segments(src, last["measurements"]["shots"], cfg.segment_frames, cfg.min_segment_frames):
            if s.kept:
                t = clip_task(5, s.clip_id, src, s.start, s.frames, layout, made)
                rows.append(_row("segment", s.clip_id, src, {"task": asdict(t)}))
    return rows


class DeviceActor:
    """One per device: loads the models once, runs stages 5-7 of each segment it is given
    and passes source rows through."""

    def __init__(self, cfg: PreprocessConfig, root: str, threads: int):
        import torch

        from latentsync_core.data.models import load_device_models

        device = "cuda:0" if torch.cuda.is_available() and torch.cuda.device_count() > 0 else "cpu"
        if device == "cpu":
            torch.set_num_threads(threads)
        self.cfg, self.layout = cfg, Layout(root)
        self.models = load_device_models(cfg, device, threads)

    def __call__(self, row: dict[str, str]) -> dict[str, str]:
        if row["kind"] != "segment":
            return row
        task = Task(**json.loads(row["payload"])["task"])
        outcomes = []
        while True:
            outcome = execute(task, self.cfg, self.models)
            outcomes.append(asdict(outcome))
            if outcome.error or not outcome.passed or task.stage == 7:
                break
            task = clip_task(task.stage + 1, task.item_id, row["source"], 0, 0, self.layout)
        return _row("segment", row["item"], row["source"], outcomes)


class RayEngine:
    name = "ray"

    def __init__(self, cfg: PreprocessConfig):
        try:
            import ray
        except ImportError as exc:
            raise CodedError("RAY_UNAVAILABLE", 'engine ray needs Ray Data: pip install "ray[data]"') from exc
        self.cfg = cfg
        self._started = False
        if not ray.is_initialized():
            # Workers need the weights mode and paths the driver was given.
            env = {k: v for k, v in os.environ.items() if k.startswith("LATENTSYNC_")}
            try:
                if cfg.ray_address:
                    ray.init(address=cfg.ray_address, runtime_env={"env_vars": env}, log_to_driver=False)
                else:
                    ray.init(num_cpus=cfg.workers or None, include_dashboard=False, log_to_driver=False,
                             runtime_env={"env_vars": env})  # fmt: skip
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

    def run(self, sched: Scheduler) -> None:
        import ray

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # the stage bars are ours
        threads = max(1, min(self.workers - 1, os.cpu_count() or 1)) if self.gpus == 0 else 2
        try:
            for _ in range(MAX_PASSES):
                cpu_tasks, device_tasks = sched.take_all()
                if not cpu_tasks and not device_tasks:
                    break
                self._pass(sched, cpu_tasks, device_tasks, threads)
                sched.replan()
        finally:
            if self._started:
                ray.shutdown()

    def _pass(self, sched: Scheduler, cpu_tasks: list[Task], device_tasks: list[Task], threads: int) -> None:
        import ray

        root = str(sched.layout.root)
        sources = [
            _row("source", t.item_id, t.item_id, {"task": asdict(t), "path": sched.sources[t.item_id]["path"],
                                                  "chain": sched.sources[t.item_id]["status"] != "segmented"})
            for t in cpu_tasks
        ]  # fmt: skip
        segments = [
            _row("segment", t.item_id, sched.clips[t.item_id].source, {"task": asdict(t)}) for t in device_tasks
        ]
        parts = []
        if sources:
            kwargs = {"cfg": self.cfg, "root": root}
            parts.append(
                ray.data.from_items(sources).flat_map(source_chain, fn_kwargs=kwargs, memory=SOURCE_TASK_MEMORY)
            )
        if segments:
            parts.append(ray.data.from_items(segments))
        ds = parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]
        ds = ds.map(
            DeviceActor,
            fn_constructor_kwargs={"cfg": self.cfg, "root": root, "threads": threads},
            compute=ray.data.ActorPoolStrategy(size=max(1, self.gpus)),
            num_gpus=1 if self.gpus else 0,
            num_cpus=1 if self.gpus else threads,
        )
        held: dict[str, list[dict[str, str]]] = {}
        try:
            for row in ds.iter_rows():
                self._feed(sched, row, held)
        except Exception as exc:  # a Ray task or actor died: what was recorded stays
            raise CodedError(
                "RAY_FAILED", f"the Ray pipeline failed ({type(exc).__name__}: {exc}); rerun to resume"
            ) from exc
        for rows in held.values():  # segments whose source row never came back
            for row in rows:
                sched.errors.append({"stage": 5, "item": row["item"], "error": "its source's outcomes were lost"})

    def _feed(self, sched: Scheduler, row: dict[str, str], held: dict[str, list[dict[str, str]]]) -> None:
        if row["kind"] == "segment" and row["item"] not in sched.clips:  # ahead of its source's row
            held.setdefault(row["source"], []).append(row)
            return
        for data in json.loads(row["payload"]):
            outcome = Outcome(**data)
            sched.on_outcome(Task(outcome.stage, outcome.item_id), outcome)
        if row["kind"] == "source":
            for later in held.pop(row["source"], []):
                self._feed(sched, later, held)
