"""The seam between the pipeline and where its tasks run.

An :class:`Engine` runs tasks somewhere (a local process pool and one worker per device, or
a Ray cluster); it decides nothing. :func:`drive` is the one loop both engines run under:
it asks the scheduler for what is ready (``take_device``, ``take_cpu``), hands it to the
engine, and gives each outcome back to the scheduler, which records it and releases the
item's next stage. So the order of stages, the back-pressure and the resume rules live in
the scheduler alone, whatever runs the tasks.
"""

from __future__ import annotations

from typing import Protocol

from latentsync_core.data.items import Outcome, Task
from latentsync_core.data.scheduler import Scheduler


class Engine(Protocol):
    name: str  # "local" | "ray", recorded with the run
    workers: int  # processes (or cluster CPUs) for the CPU stages
    devices: list[str]  # where the device stages run

    def start(self, warm_devices: bool) -> None:
        """Start the workers; ``warm_devices``: let device workers load their models now
        (there is work to come), while the CPU stages make their first segments."""

    def cpu_slots(self) -> int:
        """How many more CPU-stage tasks to hand over now (the rest wait in the scheduler)."""

    def submit(self, task: Task) -> None:
        """Start ``task`` (a device stage goes to a device worker)."""

    def busy(self) -> bool:
        """Whether any submitted task has not been returned by :meth:`wait` yet."""

    def wait(self) -> list[tuple[Task, Outcome]]:
        """Block until at least one task is done; every finished task with its outcome.
        Raises :class:`~latentsync_core.errors.CodedError` when a worker dies."""

    def stop(self, clean: bool) -> None:
        """Release the workers; ``clean`` is False after an error or an interrupt (stop
        running tasks now, not when they end)."""


def drive(sched: Scheduler, engine: Engine) -> None:
    """Run every pending item through the engine until nothing is left to do."""
    engine.start(warm_devices=not sched.idle())
    clean = False
    try:
        while True:
            for task in sched.take_device():
                engine.submit(task)
            for task in sched.take_cpu(engine.cpu_slots()):
                engine.submit(task)
            if not engine.busy():
                break
            for task, outcome in engine.wait():
                sched.on_outcome(task, outcome)
        clean = True
    finally:
        engine.stop(clean)
