"""Validation that tracks what users care about: held-out clips lip-synced by the
inference pipeline with the weights being trained, scored with SyncNetV2 (LSE-C, LSE-D).

The loss of a long stage-2 fine-tune keeps falling while the lip sync can get worse; the
sync score shows it, so the best checkpoint is chosen by LSE-C.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL

from latentsync_core.audio.whisper_features import WhisperFeatureExtractor
from latentsync_core.common.errors import CodedError
from latentsync_core.configs.scheduler import SchedulerConfig
from latentsync_core.data.fileslists import read_fileslist
from latentsync_core.evaluation.scoring import VideoScorer
from latentsync_core.inference.params import LipSyncParams
from latentsync_core.media.video_io import FrameReader
from latentsync_core.models.loading import ModelBundle
from latentsync_core.vision.face_detection import FaceDetector

log = logging.getLogger(__name__)


@dataclass
class ValidationResult:
    step: int
    lse_c: float  # mean over the clips that could be scored (nan if none)
    lse_d: float
    clips: list[dict] = field(default_factory=list)  # per clip: path, output, lse_c, lse_d, error
    sample_frames: np.ndarray | None = None  # (N, H, W, 3) uint8 frames of the first output

    @property
    def scored(self) -> int:
        return sum(1 for c in self.clips if c.get("lse_c") is not None)

    def metrics(self) -> dict[str, float]:
        return {"lse_c": self.lse_c, "lse_d": self.lse_d, "clips_scored": float(self.scored)}


@dataclass(frozen=True)
class ValidationSet:
    pairs: list[tuple[Path, Path]]  # (video, audio)

    @classmethod
    def from_data(cls, val_list: Path, fallback_video: str, fallback_audio: str, count: int) -> ValidationSet:
        """The first ``count`` clips of ``fileslist_val.txt`` (each with its own audio), or
        the config's ``val_video_path``/``val_audio_path`` when the list is empty or absent."""
        clips = read_fileslist(val_list, missing_ok=True)[:count]
        if clips:
            return cls([(c, c) for c in clips])
        if fallback_video and Path(fallback_video).is_file() and Path(fallback_audio).is_file():
            return cls([(Path(fallback_video), Path(fallback_audio))])
        return cls([])


class Validator:
    """Runs the inference pipeline on the validation set with the trainer's modules."""

    def __init__(
        self,
        vae: AutoencoderKL,
        whisper: WhisperFeatureExtractor,
        detector: FaceDetector,
        syncnet: torch.nn.Module,
        scheduler: SchedulerConfig,
        resolution: int,
        device: torch.device,
        params: LipSyncParams,
    ):
        self.vae, self.whisper, self.detector, self.syncnet = vae, whisper, detector, syncnet
        self.scheduler, self.resolution, self.device, self.params = scheduler, resolution, device, params

    def run(self, unet: torch.nn.Module, pairs: list[tuple[Path, Path]], out_dir: Path, step: int) -> ValidationResult:
        from latentsync_core.inference.pipeline import LipSyncPipeline

        was_training = unet.training
        unet.eval()
        dtype = next(unet.parameters()).dtype
        vae_dtype = self.vae.dtype
        if vae_dtype != dtype:  # the pipeline runs every network in the UNet's dtype
            self.vae.to(dtype)
        bundle = ModelBundle(
            unet=unet,
            vae=self.vae,
            whisper=self.whisper,
            detector=self.detector,
            scheduler=self.scheduler,
            resolution=self.resolution,
            device=self.device,
            dtype=dtype,
            weights_kind="official",
        )
        pipeline = LipSyncPipeline(bundle, detect_workers=1)
        scorer = VideoScorer(self.syncnet, self.detector)  # the scoring of `latentsync eval`
        clips: list[dict] = []
        sample = None
        out_dir.mkdir(parents=True, exist_ok=True)
        try:
            for i, (video, audio) in enumerate(pairs):
                output = out_dir / f"val-{i:02d}-{video.stem}.mp4"
                entry: dict = {"video": str(video), "output": str(output), "lse_c": None, "lse_d": None}
                try:
                    with torch.no_grad():
                        result = pipeline.run(video, audio, output, self.params, work_dir=out_dir / f".work-{i}")
                    score = scorer.score(result.output_path)
                    if score.lse_c is not None and score.lse_d is not None:
                        entry["lse_c"], entry["lse_d"] = score.lse_c, score.lse_d
                    else:
                        entry["error"] = "; ".join(score.notes) or "no face track to score"
                    if sample is None:
                        sample = _frames(output)
                except CodedError as exc:  # a clip the pipeline refuses is reported, not fatal
                    entry["error"] = f"{exc.code}: {exc.message}"
                    log.warning("validation clip %s: %s", video, entry["error"])
                clips.append(entry)
        finally:
            if vae_dtype != dtype:
                self.vae.to(vae_dtype)
            unet.train(was_training)
        scored = [c for c in clips if c["lse_c"] is not None]
        lse_c = float(np.mean([c["lse_c"] for c in scored])) if scored else math.nan
        lse_d = float(np.mean([c["lse_d"] for c in scored])) if scored else math.nan
        return ValidationResult(step, lse_c, lse_d, clips, sample)


def _frames(path: Path, limit: int = 16, size: int = 128) -> np.ndarray | None:
    """The first ``limit`` frames of a video, ``size`` px square (a TensorBoard strip)."""
    with FrameReader(path, size, size) as reader:
        frames = []
        for frame in reader:
            frames.append(frame.copy())
            if len(frames) == limit:
                break
    return np.stack(frames) if frames else None


def is_better(result: ValidationResult, best: float | None) -> bool:
    return not math.isnan(result.lse_c) and (best is None or result.lse_c > best)
