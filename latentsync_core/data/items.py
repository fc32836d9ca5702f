"""What flows through the pipeline: the stages, tasks (one stage of one item) and their
outcomes, and the stable ids that name sources and clips on disk and in the manifest."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


class Stage(IntEnum):
    """The seven stages, in order. The number is the stage's key in the manifest
    (``decisions.stage``); :attr:`label` is its name in the manifest, the report and the
    bars, and the name of its module under ``data/stages/``."""

    CHECK = 1
    RESAMPLE = 2
    SHOTS = 3
    SEGMENT = 4
    ALIGN = 5
    SYNC = 6
    QUALITY = 7

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def on_source(self) -> bool:
        """Works on a whole source file (else on one segment, a clip)."""
        return self in SOURCE_STAGES

    @property
    def on_device(self) -> bool:
        """Runs in a device worker, which holds the models."""
        return self in DEVICE_STAGES

    @property
    def next(self) -> Stage | None:
        return Stage(self + 1) if self < LAST_STAGE else None


SOURCE_STAGES = (Stage.CHECK, Stage.RESAMPLE, Stage.SHOTS)
CLIP_STAGES = (Stage.SEGMENT, Stage.ALIGN, Stage.SYNC, Stage.QUALITY)
DEVICE_STAGES = (Stage.ALIGN, Stage.SYNC, Stage.QUALITY)
LAST_STAGE = Stage.QUALITY


@dataclass(frozen=True)
class Task:
    """One stage of one item. ``args`` holds only plain values (paths as strings), so a
    task pickles to any process or Ray worker."""

    stage: Stage
    item_id: str
    args: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stage", Stage(self.stage))  # a plain number (from a test or a pickle) is checked


@dataclass
class Outcome:
    """A stage's decision on one item. ``error`` marks an unexpected failure (a bug or a
    broken installation): it is reported but not recorded as a decision, so a rerun retries."""

    stage: Stage
    item_id: str
    passed: bool
    reason: str = ""
    measurements: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0  # worker time spent
    footage_s: float = 0.0  # seconds of footage the stage handled (for throughput)
    error: str = ""

    def __post_init__(self) -> None:
        self.stage = Stage(self.stage)

    @classmethod
    def keep(cls, task: Task, **measurements: Any) -> Outcome:
        return cls(task.stage, task.item_id, True, "", dict(measurements))

    @classmethod
    def reject(cls, task: Task, reason: str, **measurements: Any) -> Outcome:
        return cls(task.stage, task.item_id, False, reason, dict(measurements))


def source_id(rel_path: str) -> str:
    """A file-name-safe id for a source, unique for its path relative to the input folder:
    a readable slug plus a short hash (two paths may slug alike)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", rel_path.rsplit(".", 1)[0]).strip("._-")[:60] or "source"
    digest = hashlib.sha1(rel_path.encode()).hexdigest()[:8]
    return f"{slug}-{digest}"


def clip_id(src_id: str, shot: int, segment: int) -> str:
    return f"{src_id}_shot{shot:03d}_seg{segment:03d}"


def split_key(rel_path: str) -> float:
    """A fixed number in [0, 1) per source path: the validation split compares it with
    ``val_fraction``, so a source never changes sides when others are added."""
    return int(hashlib.sha256(rel_path.encode()).hexdigest()[:12], 16) / float(16**12)
