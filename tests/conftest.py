"""Shared fixtures: the reference vectors and media beside the checkout, small random weights."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("LATENTSYNC_SHARED", ROOT.parent / "shared"))
REFERENCE = SHARED / "reference"
MEDIA = SHARED / "media"

torch.set_num_threads(max(1, os.cpu_count() or 1))


def _require(path: Path) -> Path:
    # A missing reference is a failure, not a skip: parity is what these tests prove.
    assert path.exists(), f"{path} is missing: the tests need ../shared beside the checkout"
    return path


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    return _require(REFERENCE)


@pytest.fixture(scope="session")
def media_dir() -> Path:
    return _require(MEDIA)


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Random UNet and Whisper checkpoints in the real file formats."""
    from latentsync_core.weights.random_weights import (
        tiny_unet_config,
        write_random_unet_checkpoint,
        write_random_whisper_checkpoint,
    )

    folder = tmp_path_factory.mktemp("weights")
    unet = write_random_unet_checkpoint(folder / "latentsync_unet.pt", tiny_unet_config(), seed=3, global_step=42)
    whisper = write_random_whisper_checkpoint(folder / "whisper" / "tiny.pt", seed=4)
    return {"unet": unet, "whisper": whisper}
