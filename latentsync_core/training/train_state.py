"""A run's whole training state on disk: UNet weights, optimizer, grad scaler, learning-rate
schedule, step (which is also the data position: see ``unet_dataset``), the random states
of python, numpy and torch, and the validation history.

Files live in ``RUN/checkpoints``: ``state-<step>.pt`` (the last ``keep_last`` are kept)
and ``best.pt`` (the state with the highest validation LSE-C, with ``best.json``). Every
file is written under a temporary name and renamed, so a crash never leaves a half file
under a real name.
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
from latentsync_core.data.layout import writing

FORMAT = "latentsync-unet-train-state/1"
_STATE_RE = re.compile(r"^state-(\d+)\.pt$")


def capture_rng() -> dict[str, Any]:
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
    return {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}  # fmt: skip


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
    """``RUN/checkpoints``: save, list, prune, best."""

    def __init__(self, run_dir: str | Path, keep_last: int = 3):
        self.root = Path(run_dir) / "checkpoints"
        self.keep_last = max(1, keep_last)

    @property
    def best(self) -> Path:
        return self.root / "best.pt"

    def path(self, step: int) -> Path:
        return self.root / f"state-{step:08d}.pt"

    def states(self) -> list[Path]:
        """Saved step states, oldest first."""
        if not self.root.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.root.iterdir() if (m := _STATE_RE.match(p.name))]
        return [p for _, p in sorted(found)]

    def latest(self) -> Path | None:
        states = self.states()
        return states[-1] if states else None

    def save(self, state: TrainState) -> Path:
        path = self.path(state.step)
        write_state(path, state)
        for old in self.states()[: -self.keep_last]:
            old.unlink(missing_ok=True)
        return path

    def save_best(self, state: TrainState, metrics: dict[str, float]) -> Path:
        write_state(self.best, state)
        with writing(self.root / "best.json") as tmp:
            tmp.write_text(json.dumps({"step": state.step, **metrics}, indent=2))
        return self.best


def write_state(path: Path, state: TrainState) -> None:
    with writing(path) as tmp:
        torch.save(state.to_dict(), tmp)


def read_state(path: str | Path) -> TrainState:
    path = Path(path)
    if not path.is_file():
        raise CodedError("TRAIN_STATE_NOT_FOUND", f"training state not found: {path}")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and tensor errors all mean "not usable"
        raise CodedError("TRAIN_STATE_UNREADABLE", f"{path} is not a readable training state: {exc}") from exc
    return TrainState.from_dict(raw, str(path))
