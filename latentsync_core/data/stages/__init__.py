"""The seven preprocessing stages, one module each, named after the stage
(:class:`~latentsync_core.data.items.Stage`): ``check``, ``resample``, ``shots``, ``segment``,
``align``, ``sync``, ``quality``.

Every stage a worker runs has ``run(task, cfg, models) -> Outcome`` in its module
(:class:`StageRunner`); :func:`runner` finds it by the stage's name and imports the module
only then, so a CPU worker never imports torch. ``segment`` is arithmetic on stage 3's
shots that the scheduler does itself (:func:`~latentsync_core.data.stages.segment.plan_segments`).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any, Protocol

from latentsync_core.data.items import Outcome, Stage, Task

if TYPE_CHECKING:
    from latentsync_core.data.config import PreprocessConfig
    from latentsync_core.data.stages.quality import QualityScorer

IN_SCHEDULER = (Stage.SEGMENT,)  # stages with no worker: the scheduler decides them


@dataclass
class DeviceModels:
    """What one device worker holds for its whole life (loaded by ``data.models``)."""

    device: str
    detector: Any
    syncnet: Any
    scorer: QualityScorer
    threads: int


class StageRunner(Protocol):
    def __call__(self, task: Task, cfg: PreprocessConfig, models: DeviceModels | None) -> Outcome:
        """Run one stage on one item; a problem with the item is a rejection, not an exception.
        ``models`` is set in device workers (the stages with ``Stage.on_device``)."""


def runner(stage: Stage) -> StageRunner:
    """The ``run`` function of ``stage``'s module."""
    if stage in IN_SCHEDULER:
        raise ValueError(f"stage {stage.label} runs in the scheduler, not in a worker")
    return import_module(f"{__name__}.{stage.label}").run
