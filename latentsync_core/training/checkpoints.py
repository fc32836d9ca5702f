"""Checkpoints of training runs, for both trainers: ``RUN/checkpoints/<prefix>-<step>.pt``,
each written under a temporary name and renamed (a crash never leaves a half file under a
real name), listed by step, the oldest pruned, read back with coded errors; a run never
overwrites another's checkpoints, and ``--resume`` continues from the newest.

Each trainer keeps its own payload, so runs written before stay readable:

- ``latentsync train unet``: a :class:`TrainState` (UNet weights, optimizer, grad scaler,
  learning-rate schedule, step, which is also the data position: see ``unet_dataset``, the
  random states of python, numpy and torch, the validation history), files
  ``state-<step>.pt`` (the last ``keep_last`` kept) and ``best.pt`` + ``best.json`` (the state
  with the highest validation LSE-C);
- ``latentsync train syncnet``: a plain dict whose ``state_dict`` also loads as a
  StableSyncNet checkpoint, files ``checkpoint-<step>.pt`` (all kept).
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latentsync_core.common.errors import CodedError
from latentsync_core.storage.atomic import writing

FORMAT = "latentsync-unet-train-state/1"
UNET_PREFIX = "state"
SYNCNET_PREFIX = "checkpoint"


def capture_rng() -> dict[str, Any]:
    """The random states of python, numpy, torch (and CUDA) in this process, as tensors and
    plain values (a weights-only load reads them back)."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": _numpy_state_to_tensors(np.random.get_state()),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(_numpy_state_from_tensors(state["numpy"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _numpy_state_to_tensors(state: tuple) -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = state
    return {
        "kind": kind,
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached": float(cached),
    }


def _numpy_state_from_tensors(d: dict[str, Any]) -> tuple:
    return (d["kind"], d["keys"].numpy().astype(np.uint32), d["pos"], d["has_gauss"], d["cached"])


@dataclass
class TrainState:
    step: int
    unet: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    lr_scheduler: dict[str, Any]
    scaler: dict[str, Any] | None
    rng: dict[str, Any]
    model_config: dict[str, Any]
    config: dict[str, Any]  # the whole resolved training config
    global_batch: int
    history: dict[str, Any] = field(default_factory=dict)  # validation results and the best so far

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **self.__dict__}

    @classmethod
    def from_dict(cls, d: dict[str, Any], origin: str) -> TrainState:
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise CodedError("NOT_A_TRAIN_STATE", f"{origin} is not a state written by `latentsync train unet`")
        return cls(**{k: v for k, v in d.items() if k != "format"})


class CheckpointDir:
    """``RUN/checkpoints``: save, list, prune, best, and the start-or-resume rule."""

    def __init__(self, run_dir: str | Path, keep_last: int | None = 3, prefix: str = UNET_PREFIX):
        self.run_dir = Path(run_dir)
        self.root = self.run_dir / "checkpoints"
        self.keep_last = None if keep_last is None else max(1, keep_last)  # None: keep every checkpoint
        self.prefix = prefix
        self._name = re.compile(rf"^{re.escape(prefix)}-(\d+)\.pt$")

    @property
    def best(self) -> Path:
        return self.root / "best.pt"

    def path(self, step: int) -> Path:
        return self.root / f"{self.prefix}-{step:08d}.pt"

    def saved(self) -> list[tuple[int, Path]]:
        """(step, path) of the saved checkpoints, oldest first."""
        if not self.root.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.root.iterdir() if (m := self._name.match(p.name))]
        return sorted(found)

    def states(self) -> list[Path]:
        """Saved step checkpoints, oldest first."""
        return [p for _, p in self.saved()]

    def latest(self) -> Path | None:
        states = self.states()
        return states[-1] if states else None

    def save(self, step: int, payload: dict[str, Any]) -> Path:
        path = self.path(step)
        write_checkpoint(path, payload)
        if self.keep_last is not None:
            for old in self.states()[: -self.keep_last]:
                old.unlink(missing_ok=True)
        return path

    def save_best(self, step: int, payload: dict[str, Any], metrics: dict[str, float]) -> Path:
        write_checkpoint(self.best, payload)
        with writing(self.root / "best.json") as tmp:
            tmp.write_text(json.dumps({"step": step, **metrics}, indent=2))
        return self.best

    def resume_point(self, resume: bool, required: bool) -> Path | None:
        """The checkpoint to resume from: the newest with ``resume`` (none yet: a new run, or
        ``NOTHING_TO_RESUME`` when ``required``), and ``RUN_EXISTS`` without ``resume`` when
        the run already holds checkpoints (they are never overwritten)."""
        latest = self.latest()
        if latest is not None and not resume:
            raise CodedError(
                "RUN_EXISTS", f"{self.run_dir} already holds checkpoints: add --resume or pick a new --output"
            )
        if latest is None and resume and required:
            raise CodedError("NOTHING_TO_RESUME", f"--resume: no training state in {self.root}")
        return latest if resume else None


def write_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    with writing(path) as tmp:
        torch.save(payload, tmp)


def read_checkpoint_file(path: str | Path) -> dict[str, Any]:
    """A checkpoint's payload (weights only, on the CPU), with coded errors when it is absent
    or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise CodedError("TRAIN_STATE_NOT_FOUND", f"training state not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and tensor errors all mean "not usable"
        raise CodedError("TRAIN_STATE_UNREADABLE", f"{path} is not a readable training state: {exc}") from exc


def read_state(path: str | Path) -> TrainState:
    """A UNet run's :class:`TrainState`."""
    return TrainState.from_dict(read_checkpoint_file(path), str(Path(path)))
