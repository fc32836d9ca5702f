"""Generation for ``eval run``: every UNet runs the normal pipeline with the same VAE,
Whisper, face detector and job parameters (seed, steps, guidance), one UNet in memory at
a time.

A model is ``demo`` (the demo UNet, with ``LATENTSYNC_WEIGHTS=demo`` for the other files) or
a ``latentsync_unet.pt``-style file (``NAME=PATH`` names it; the default name is the
file's stem), loaded strictly with the UNet config of the weights in use.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from latentsync_core.common.errors import CodedError
from latentsync_core.configs.loader import CONFIG_DIR
from latentsync_core.configs.unet import UNetModelConfig, load_unet_config
from latentsync_core.evaluation.store import GROUND_TRUTH
from latentsync_core.inference.params import LipSyncParams
from latentsync_core.inference.pipeline import LipSyncPipeline, LipSyncResult
from latentsync_core.models.checkpoint import CheckpointError, load_unet_checkpoint
from latentsync_core.models.loading import ModelBundle, load_models
from latentsync_core.vision.face_detection import FaceDetector
from latentsync_core.weights.demo import demo_unet_config, ensure_demo_weights

DEMO = "demo"
PARTIAL_PREFIX = ".partial-"  # an output being written
WORK_DIR = ".work"  # the pipeline's work files of the output being written


@dataclass(frozen=True)
class UNetSpec:
    name: str
    path: Path | None  # None: the demo UNet

    @property
    def label(self) -> str:
        return DEMO if self.path is None else str(self.path.resolve())


def parse_unet_specs(values: list[str]) -> list[UNetSpec]:
    """``--unet`` values (``demo``, ``PATH`` or ``NAME=PATH``) -> specs with unique names.
    Raises :class:`CodedError` ``MISSING_UNET`` or ``INVALID_ARGUMENT``."""
    specs: list[UNetSpec] = []
    for value in values:
        name, _, path_text = value.rpartition("=") if "=" in value else ("", "", value)
        if path_text == DEMO:
            spec = UNetSpec(name or DEMO, None)
        else:
            path = Path(path_text).expanduser()
            if not path.is_file():
                raise CodedError("MISSING_UNET", f"UNet checkpoint not found: {path}")
            spec = UNetSpec(name or path.stem, path)
        if spec.name == GROUND_TRUTH or not spec.name or "/" in spec.name:
            raise CodedError("INVALID_ARGUMENT", f"--unet {value}: {spec.name!r} cannot name a model")
        if any(s.name == spec.name for s in specs):
            raise CodedError("INVALID_ARGUMENT", f"two models named {spec.name!r}: name them (--unet NAME=PATH)")
        specs.append(spec)
    if not specs:
        raise CodedError("INVALID_ARGUMENT", "give at least one --unet")
    return specs


@dataclass(frozen=True)
class GenerationOptions:
    weights: str  # "official" or "demo": the VAE, Whisper and detector (and the demo UNet)
    checkpoint_dir: Path
    cache_dir: Path
    unet_config: Path = CONFIG_DIR / "unet" / "stage2_512.yaml"
    device: str | None = None
    dtype: str | None = None
    detect_workers: int | None = None


class Generator:
    """Loads the shared models once; ``pipeline(spec)`` gives a pipeline with that UNet."""

    def __init__(self, options: GenerationOptions):
        self.options = options
        self.models: ModelBundle = load_models(
            options.weights,
            options.checkpoint_dir,
            options.cache_dir,
            options.unet_config,
            options.device,
            dtype=options.dtype,
        )
        self._loaded: str | None = None  # which UNet self.models holds

    @property
    def detector(self) -> FaceDetector:
        return self.models.detector

    def _unet_config(self) -> UNetModelConfig:
        if self.options.weights == DEMO:
            return demo_unet_config()
        return load_unet_config(self.options.unet_config).model

    def pipeline(self, spec: UNetSpec) -> LipSyncPipeline:
        if spec.path is None and self.options.weights != DEMO:
            raise CodedError(
                "INVALID_ARGUMENT", "--unet demo needs the demo weights for the other files (LATENTSYNC_WEIGHTS=demo)"
            )
        path = ensure_demo_weights(self.options.cache_dir).unet if spec.path is None else spec.path
        # free the previous UNet before the next is built: one 1.3 B-parameter model at a time
        self.models = dataclasses.replace(self.models, unet=None)  # type: ignore[arg-type]
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        try:
            unet, _ = load_unet_checkpoint(path, self._unet_config(), self.models.device, self.models.dtype)
        except CheckpointError as exc:
            raise CodedError("INVALID_UNET", f"{path}: {exc}") from exc
        self.models = dataclasses.replace(self.models, unet=unet)
        workers = self.options.detect_workers
        return LipSyncPipeline(self.models, detect_workers=workers, syncnet=None)


def generate(
    pipeline: LipSyncPipeline, video: Path, speech: Path, output: Path, params: LipSyncParams
) -> LipSyncResult:
    """One output, written under a temporary name and renamed when complete: a file at
    ``output`` is always a finished video (what a resumed run relies on)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f"{PARTIAL_PREFIX}{output.stem}{output.suffix}")
    work = output.parent / WORK_DIR / output.stem
    try:
        result = pipeline.run(video, speech, partial, params, work_dir=work)
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
        shutil.rmtree(work.parent, ignore_errors=True)  # one output is made at a time: all of .work is its
    result.output_path = output
    return result


def remove_leftovers(folder: Path) -> None:
    """What a killed run left in a model's output folder: partial outputs and work files."""
    for path in folder.glob(f"{PARTIAL_PREFIX}*"):
        path.unlink(missing_ok=True)
    shutil.rmtree(folder / WORK_DIR, ignore_errors=True)
