"""Loading every model the pipeline needs, once: UNet, VAE, Whisper encoder, face detector."""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL

from latentsync_core.audio import WhisperFeatureExtractor
from latentsync_core.configs.loader import CONFIG_DIR
from latentsync_core.configs.scheduler import SchedulerConfig, load_scheduler_config
from latentsync_core.configs.unet import load_unet_config
from latentsync_core.models import UNet3DConditionModel, load_unet_checkpoint
from latentsync_core.models.vae import load_vae
from latentsync_core.vision.face_detection import FaceDetector, make_face_detector
from latentsync_core.weights.demo import DEMO_NOTICE, DEMO_RESOLUTION, demo_unet_config, ensure_demo_weights
from latentsync_core.weights.official import WeightPaths, check_official_weights

log = logging.getLogger(__name__)


@dataclass
class ModelBundle:
    unet: UNet3DConditionModel
    vae: AutoencoderKL
    whisper: WhisperFeatureExtractor
    detector: FaceDetector
    scheduler: SchedulerConfig
    resolution: int
    device: torch.device
    dtype: torch.dtype
    weights_kind: str  # "official" or "demo"
    load_seconds: float = 0.0
    vae_id: str = ""  # identifies the VAE weights (cached templates depend on them)

    @property
    def is_demo(self) -> bool:
        return self.weights_kind == "demo"


def folder_id(folder: Path) -> str:
    """A cheap identity of a weights folder: names, sizes and modification times."""
    h = hashlib.sha256()
    for f in sorted(Path(folder).rglob("*")):
        if f.is_file():
            st = f.stat()
            h.update(f"{f.relative_to(folder)}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def pick_device(device: str | None = None, gpu_id: int = 0) -> torch.device:
    if device and device != "auto":
        return torch.device(device)
    return torch.device(f"cuda:{gpu_id}") if torch.cuda.is_available() else torch.device("cpu")


def pick_dtype(device: torch.device, name: str | None = None) -> torch.dtype:
    """float16 on a GPU, float32 on the CPU, unless a name is given (float64: exactness checks)."""
    if name and name != "auto":
        return {
            "float64": torch.float64,
            "float32": torch.float32,
            "float16": torch.float16,
            "bfloat16": torch.bfloat16,
        }[name]
    return torch.float16 if device.type == "cuda" else torch.float32


def load_models(
    weights: str,
    checkpoint_dir: Path,
    cache_dir: Path,
    unet_config_path: Path = CONFIG_DIR / "unet" / "stage2_512.yaml",
    device: str | None = None,
    gpu_id: int = 0,
    dtype: str | None = None,
    detector: FaceDetector | None = None,
) -> ModelBundle:
    """``weights`` is "official" (files under ``checkpoint_dir``) or "demo" (random, cached).
    ``detector``, when given, is used instead of the one ``make_face_detector`` picks (e.g.
    replayed faces, ``vision/recorded_faces.py``, on a machine without the detector's model)."""
    start = time.perf_counter()
    dev = pick_device(device, gpu_id)
    dt = pick_dtype(dev, dtype)
    if weights == "official":
        paths = WeightPaths.under(checkpoint_dir)
        check_official_weights(paths)
        cfg = load_unet_config(unet_config_path)
        unet_cfg, resolution = cfg.model, cfg.data.resolution
    elif weights == "demo":
        log.warning(DEMO_NOTICE)
        paths = ensure_demo_weights(cache_dir)
        unet_cfg, resolution = demo_unet_config(), DEMO_RESOLUTION
    else:
        raise ValueError(f"weights must be 'official' or 'demo', not {weights!r}")
    unet, _ = load_unet_checkpoint(paths.unet, unet_cfg, device=dev, dtype=dt)
    vae = load_vae(paths.vae, device=dev, dtype=dt)
    whisper = WhisperFeatureExtractor(paths.whisper, device=dev)  # float32 whatever dt is
    if detector is None:
        detector = make_face_detector(paths.auxiliary, device=str(dev))
    bundle = ModelBundle(
        unet=unet,
        vae=vae,
        whisper=whisper,
        detector=detector,
        scheduler=load_scheduler_config(),
        resolution=resolution,
        device=dev,
        dtype=dt,
        weights_kind=weights,
        vae_id=folder_id(paths.vae),
    )
    bundle.load_seconds = time.perf_counter() - start
    log.info("models loaded in %.1f s on %s (%s, %s weights)", bundle.load_seconds, dev, dt, weights)
    return bundle
