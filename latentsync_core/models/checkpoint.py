"""Strict loading of checkpoints: ``latentsync_unet.pt`` (``{"state_dict": ..., "global_step": ...}``)
and, through :func:`load_strict` and :func:`read_checkpoint`, every other network's file.

Upstream loads with ``strict=False`` and silently drops mismatched keys, which turns a
wrong checkpoint into a model that runs and produces noise. Here any missing, unexpected
or wrongly shaped key is an error that lists them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from latentsync_core.configs.unet import UNetModelConfig

_LISTED = 12  # keys shown per category in an error message


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or does not fit the model."""


def _describe(title: str, items: list[str]) -> str:
    shown = ", ".join(items[:_LISTED])
    more = f" (+{len(items) - _LISTED} more)" if len(items) > _LISTED else ""
    return f"{len(items)} {title}: {shown}{more}"


def check_state_dict(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], origin: str = "state_dict", what: str = "UNet config"
) -> None:
    """Raise :class:`CheckpointError` unless ``state_dict`` has exactly the model's keys and shapes."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [
        f"{k} {tuple(state_dict[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(_describe("missing keys", missing))
    if unexpected:
        problems.append(_describe("unexpected keys", unexpected))
    if wrong:
        problems.append(_describe("keys with a wrong shape (checkpoint != model)", wrong))
    if problems:
        raise CheckpointError(f"{origin} does not match the {what}: " + "; ".join(problems))


def load_strict(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], origin: str = "state_dict", what: str = "UNet config"
) -> None:
    """Strictly load ``state_dict`` into ``model`` (:class:`CheckpointError` naming ``origin``
    and the offending keys otherwise); a meta-device model takes the tensors as they are."""
    check_state_dict(model, state_dict, origin, what)
    on_meta = any(t.is_meta for t in model.state_dict().values())
    model.load_state_dict(dict(state_dict), strict=True, assign=on_meta)


load_unet_state_dict = load_strict  # the UNet's name for it


def read_checkpoint(path: str | Path, what: str, mmap: bool = False) -> Any:
    """``torch.load`` a weights-only file, turning absence and corruption into clear errors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} checkpoint not found: {path} (run `latentsync download-weights`)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:  # pickle, zip and tensor errors all mean "not a usable checkpoint"
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint: {exc}") from exc


def read_unet_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], int]:
    """Read a checkpoint file (memory-mapped, weights only); return its state dict and global step."""
    ckpt = read_checkpoint(path, "UNet", mmap=True)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(f"{path} has no 'state_dict' entry (expected {{'state_dict': ..., 'global_step': ...}})")
    return ckpt["state_dict"], int(ckpt.get("global_step", 0))


def load_unet_checkpoint(
    path: str | Path,
    config: UNetModelConfig,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[nn.Module, int]:
    """Build the UNet for ``config`` and load ``path`` into it strictly.

    The model is built on the meta device and takes the (memory-mapped) tensors directly,
    so loading never holds two copies of the 5 GB of weights.
    """
    from latentsync_core.models.unet import UNet3DConditionModel

    state_dict, step = read_unet_checkpoint(path)
    with torch.device("meta"):
        model = UNet3DConditionModel(config)
    load_unet_state_dict(model, state_dict, origin=str(path))
    model = model.to(device=device, dtype=dtype).eval()
    return model, step
