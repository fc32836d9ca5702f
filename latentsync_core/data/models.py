"""The models of the device stages (face detector, SyncNetV2, quality scorer) and the
weights they come from.

``LATENTSYNC_WEIGHTS=demo`` gives the demo SyncNetV2 of :func:`latentsync_core.sync.load_syncnet_v2`
(random, from a fixed seed: the same network in every process and run, and the one the service
scores with); its confidences and offsets mean nothing, and the
manifest and report say ``"weights": "demo"``. Otherwise ``auxiliary/syncnet_v2.model``
is loaded strictly. :func:`describe_models` runs the same checks in the coordinating
process first, so a missing or wrong file stops the run before any work starts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from latentsync_core.common.errors import CodedError
from latentsync_core.data.config import PreprocessConfig
from latentsync_core.data.stages import DeviceModels
from latentsync_core.data.stages.quality import HYPERIQA_FILE, make_scorer, quality_model_kind

SYNCNET_FILE = "syncnet_v2.model"
WEIGHTS_HINT = "put the file there (upstream's checkpoints/auxiliary) or set LATENTSYNC_WEIGHTS=demo"


def weights_kind() -> str:
    value = os.environ.get("LATENTSYNC_WEIGHTS", "official").strip().lower() or "official"
    if value not in ("official", "demo"):
        raise CodedError("INVALID_WEIGHTS_MODE", f"LATENTSYNC_WEIGHTS must be official or demo, got {value!r}")
    return value


def syncnet_path(cfg: PreprocessConfig) -> Path:
    return cfg.checkpoints() / "auxiliary" / SYNCNET_FILE


def face_detector_name(cfg: PreprocessConfig) -> str:
    from latentsync_core.vision.face_detection import insightface_available

    return "insightface" if insightface_available(cfg.checkpoints() / "auxiliary") else "dlib-hog"


def load_syncnet(cfg: PreprocessConfig, kind: str, device: str = "cpu") -> Any:
    from latentsync_core.models.checkpoint import CheckpointError
    from latentsync_core.sync import load_syncnet_v2
    from latentsync_core.weights.official import MissingWeightsError

    path = syncnet_path(cfg)
    try:
        return load_syncnet_v2(cfg.checkpoints(), kind, device)[0]
    except MissingWeightsError as exc:
        raise CodedError("WEIGHTS_MISSING", f"SyncNetV2 checkpoint not found: {path}; {WEIGHTS_HINT}") from exc
    except CheckpointError as exc:
        raise CodedError("WEIGHTS_INVALID", f"cannot load SyncNetV2 from {path}: {exc}") from exc


def describe_models(cfg: PreprocessConfig) -> dict[str, str]:
    """Check the weights the run will use (loading them once) and name them, for the
    manifest and the report. Raises :class:`CodedError` when the run cannot start."""
    kind = weights_kind()
    load_syncnet(cfg, kind)
    quality = quality_model_kind(cfg)
    if quality == "hyperiqa":
        path = cfg.checkpoints() / "auxiliary" / HYPERIQA_FILE
        if not path.is_file():
            raise CodedError("WEIGHTS_MISSING", f"HyperIQA checkpoint not found: {path} (quality_model: hyperiqa)")
        from latentsync_core.data.hyper_iqa import load_hyper_iqa
        from latentsync_core.models.checkpoint import CheckpointError

        try:
            load_hyper_iqa(path)
        except CheckpointError as exc:
            raise CodedError("WEIGHTS_INVALID", f"cannot load HyperIQA from {path}: {exc}") from exc
    return {"weights": kind, "quality_model": quality, "face_detector": face_detector_name(cfg)}


def load_device_models(cfg: PreprocessConfig, device: str, threads: int) -> DeviceModels:
    from latentsync_core.vision.face_detection import make_face_detector

    detector = make_face_detector(cfg.checkpoints() / "auxiliary", device)
    syncnet = load_syncnet(cfg, weights_kind(), device)
    return DeviceModels(device, detector, syncnet, make_scorer(cfg, device), threads)
