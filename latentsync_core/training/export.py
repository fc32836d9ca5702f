"""``latentsync train export``: a run's UNet as ``latentsync_unet.pt`` in the official
layout (``{"state_dict": ..., "global_step": ...}``), checked key by key against the
model its config builds, so the service's strict loader accepts it."""

from __future__ import annotations

from pathlib import Path

import torch

from latentsync_core.common.errors import CodedError
from latentsync_core.configs.unet import load_model_section
from latentsync_core.models.unet import UNet3DConditionModel
from latentsync_core.storage.atomic import writing
from latentsync_core.training.checkpoints import CheckpointDir, read_state
from latentsync_core.training.unet_models import check_unet_state

WHICH = ("best", "last")


def pick_state(run_dir: str | Path, which: str = "best") -> Path:
    """``best``: the best validation state, else the last; ``last``: the latest step state."""
    if which not in WHICH:
        raise CodedError("INVALID_PARAMETER", f"which must be one of {WHICH}, not {which!r}")
    ckpts = CheckpointDir(run_dir)
    if which == "best" and ckpts.best.is_file():
        return ckpts.best
    latest = ckpts.latest()
    if latest is None:
        raise CodedError("TRAIN_STATE_NOT_FOUND", f"no training state in {ckpts.root} (is {run_dir} a training run?)")
    return latest


def export_unet(
    run_or_state: str | Path, output: str | Path, which: str = "best", dtype: torch.dtype | None = None
) -> tuple[Path, int]:
    """Write the UNet of a run folder (or of one state file) to ``output``; returns the
    state file used and its step. ``dtype``: cast floating weights (default: as trained)."""
    source = Path(run_or_state)
    state_path = source if source.is_file() else pick_state(source, which)
    state = read_state(state_path)
    with torch.device("meta"):
        model = UNet3DConditionModel(load_model_section(state.model_config, str(state_path)))
    check_unet_state(model, state.unet, str(state_path))
    weights = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v) for k, v in state.unet.items()}
    output = Path(output)
    with writing(output) as tmp:
        torch.save({"state_dict": weights, "global_step": state.step}, tmp)
    return state_path, state.step
