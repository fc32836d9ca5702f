"""Shared fixtures: the bundled media, the reference vectors in ``tests/data``, small random
weights. Nothing outside the repository is read."""

from __future__ import annotations

import json
import os
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.reference_data import DATA, load

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"

torch.set_num_threads(max(1, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled demo clip and speech (assets/README.md), plus ``demo1_audio_x4.wav``: the
    speech four times over (38.4 s, crosses Whisper's 30 s window), as the reference used."""
    folder = tmp_path_factory.mktemp("media")
    for name in ("demo1_video.mp4", "demo1_audio.wav"):
        (folder / name).symlink_to(ASSETS / name)
    with wave.open(str(ASSETS / "demo1_audio.wav")) as src:
        params, pcm = src.getparams(), src.readframes(src.getnframes())
    with wave.open(str(folder / "demo1_audio_x4.wav"), "wb") as dst:
        dst.setparams(params)
        dst.writeframes(pcm * 4)
    return folder


@pytest.fixture(scope="session")
def whisper_reference_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference's random Whisper, written in the openai-whisper file format."""
    path = tmp_path_factory.mktemp("whisper") / "tiny.pt"
    torch.save(load("whisper_tiny_a_ckpt"), path)
    return path


@pytest.fixture(scope="session")
def e2e_weights(tmp_path_factory: pytest.TempPathFactory, whisper_reference_checkpoint: Path) -> Path:
    """Upstream's end-to-end weights in the official layout (``tests/data/pipeline_e2e``)."""
    from safetensors.torch import save_file

    packed = load("pipeline_e2e/weights")
    folder = tmp_path_factory.mktemp("e2e_weights")
    torch.save(packed["unet"], folder / "latentsync_unet.pt")
    (folder / "sd-vae-ft-mse").mkdir()
    save_file(packed["vae_state_dict"], folder / "sd-vae-ft-mse" / "diffusion_pytorch_model.safetensors")
    (folder / "sd-vae-ft-mse" / "config.json").write_text(json.dumps(packed["vae_config"]))
    (folder / "whisper").mkdir()
    (folder / "whisper" / "tiny.pt").symlink_to(whisper_reference_checkpoint)
    (folder / "unet_tiny.yaml").write_text(packed["unet_yaml"])
    return folder


@pytest.fixture(scope="session")
def stable() -> dict:
    """Upstream's StableSyncNet vector (tests/data/README.md)."""
    return load("syncnet_stable_a")


@pytest.fixture(scope="session")
def v2() -> dict:
    """Upstream's SyncNetV2 vector: weights, embeddings, MFCC, the offset search."""
    return load("syncnet_v2_a")


@pytest.fixture(scope="session")
def unet_reference() -> dict:
    """Upstream's UNet on random weights (the end-to-end run's tiny UNet, stage2_512 layout
    with narrow channels): ``config`` (model section), ``state_dict``, the inputs of its
    first call (``sample``, ``timestep``, ``encoder_hidden_states``) and its ``output``."""
    import yaml

    packed = load("pipeline_e2e/weights")
    with np.load(DATA / "pipeline_e2e" / "upstream_a_32f_1p28s.npz") as z:
        step0 = {k: torch.from_numpy(z[k]) for k in ("unet_in0", "unet_t0", "unet_ctx0", "unet_out0")}
    return {
        "config": yaml.safe_load(packed["unet_yaml"])["model"],
        "state_dict": packed["unet"]["state_dict"],
        "sample": step0["unet_in0"],
        "timestep": step0["unet_t0"],
        "encoder_hidden_states": step0["unet_ctx0"],
        "output": step0["unet_out0"],
    }


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


def grey_levels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Absolute per-pixel difference of two uint8 images, in grey levels."""
    return np.abs(a.astype(np.int16) - b.astype(np.int16))
