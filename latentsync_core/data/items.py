"""What flows through the pipeline: stage numbers, tasks (one stage of one item) and their
outcomes, and the stable ids that name sources and clips on disk and in the manifest."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

# Stage number -> name; stages 1-3 work on source files, 4-7 on segments (clips).
STAGES: dict[int, str] = {
    1: "check",
    2: "resample",
    3: "shots",
    4: "segment",
    5: "align",
    6: "sync",
    7: "quality",
}
SOURCE_STAGES = (1, 2, 3)
CLIP_STAGES = (4, 5, 6, 7)
DEVICE_STAGES = (5, 6, 7)  # run in one worker per device, which holds the models
LAST_STAGE = 7


@dataclass(frozen=True)
class Task:
    """One stage of one item. ``args`` holds only plain values (paths as strings), so a
    task pickles to any process or Ray worker."""

    stage: int
    item_id: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    """A stage's decision on one item. ``error`` marks an unexpected failure (a bug or a
    broken installation): it is reported but not recorded as a decision, so a rerun retries."""

    stage: int
    item_id: str
    passed: bool
    reason: str = ""
    measurements: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0  # worker time spent
    footage_s: float = 0.0  # seconds of footage the stage handled (for throughput)
    error: str = ""

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
