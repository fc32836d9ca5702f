"""Loading the frozen auxiliary networks of the training losses (LPIPS, TREPA) from their files.

Each network is built on the meta device (no random initialisation of hundreds of millions
of parameters that the file replaces anyway), takes the file's tensors strictly, and is
frozen: the losses pass gradients to their inputs, never to their own weights.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from latentsync_core.common.errors import CodedError
from latentsync_core.models.checkpoint import CheckpointError, load_strict, read_checkpoint

M = TypeVar("M", bound=nn.Module)

README_HINT = "checkpoints/README.md says where the file comes from"


def state_dict_of(ckpt: object, path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint saved as ``{"state_dict": ...}``, ``{"model": ...}``,
    ``{"module": ...}`` (VideoMAE's releases) or as a bare state dict."""
    if isinstance(ckpt, dict):
        for key in ("state_dict", "model", "module"):
            if isinstance(ckpt.get(key), dict):
                return ckpt[key]
        if all(isinstance(v, torch.Tensor) for v in ckpt.values()):
            return ckpt
    raise CodedError("WEIGHTS_INVALID", f"{path} holds no state dict (expected {{'state_dict': ...}} or bare tensors)")


def load_frozen(build: Callable[[], M], path: str | Path, what: str) -> M:
    """``build()`` on the meta device, filled strictly from ``path``, frozen, in eval mode.

    A missing file is ``CodedError("WEIGHTS_MISSING")`` naming it; an unreadable file or one
    whose keys or shapes differ from the network's is ``CodedError("WEIGHTS_INVALID")`` with
    the missing, unexpected and misshapen keys listed.
    """
    path = Path(path)
    if not path.is_file():
        raise CodedError("WEIGHTS_MISSING", f"{what} weights not found: {path} ({README_HINT})")
    try:
        state_dict = state_dict_of(read_checkpoint(path, what), path)
        with torch.device("meta"):
            model = build()
        load_strict(model, state_dict, str(path), f"{what} network")
    except CheckpointError as exc:
        raise CodedError("WEIGHTS_INVALID", f"cannot load {what} from {path}: {exc}") from exc
    model.requires_grad_(False)
    return model.eval()
