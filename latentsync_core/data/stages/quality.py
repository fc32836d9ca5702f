"""Stage 7, ``quality``: visual quality of the first, middle and last frame of each synced segment (the
frames upstream's filter scores), and the export of kept segments as the final clips.

Two scorers, named in every decision and in the report:
- ``hyperiqa``: upstream's model and threshold (score >= 40) when
  ``auxiliary/koniq_pretrained.pkl`` exists;
- ``embedded``: no download; sharpness (variance of the Laplacian of the grey image),
  exposure (mean grey level) and contrast (grey-level standard deviation), each with a
  threshold, measured at 256 px whatever the resolution. It catches blurred, dark,
  blown-out and flat faces, not subtler artefacts. The sharpness default (8) passes the
  bundled 1080p talking head (about 20 at 256 px) and rejects it blurred by a Gaussian of
  sigma 0.8 px or upscaled from a face under ~100 px.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import cv2
import numpy as np

from latentsync_core.data.config import PreprocessConfig
from latentsync_core.data.items import Outcome, Task
from latentsync_core.data.segment_io import read_all_frames
from latentsync_core.media.constants import FPS, SAMPLE_RATE
from latentsync_core.media.ffmpeg_bin import input_arg, run_ffmpeg
from latentsync_core.storage.atomic import writing

if TYPE_CHECKING:
    from latentsync_core.data.stages import DeviceModels

HYPERIQA_FILE = "koniq_pretrained.pkl"


class QualityScorer(Protocol):
    name: str

    def assess(self, frames_rgb: np.ndarray) -> tuple[str, dict[str, Any]]:
        """(rejection reason or "", measurements incl. ``quality_score``) for (3, H, W, 3) frames."""


def sample_frames(frames: np.ndarray) -> np.ndarray:
    return frames[[0, len(frames) // 2, len(frames) - 1]]


MEASURE_SIZE = 256  # sharpness depends on scale: measure every resolution at 256 px


def embedded_measures(frame_rgb: np.ndarray) -> dict[str, float]:
    grey = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2GRAY)
    if grey.shape[:2] != (MEASURE_SIZE, MEASURE_SIZE):
        grey = cv2.resize(grey, (MEASURE_SIZE, MEASURE_SIZE), interpolation=cv2.INTER_AREA)
    return {
        "sharpness": float(cv2.Laplacian(grey, cv2.CV_64F).var()),
        "brightness": float(grey.mean()),
        "contrast": float(grey.std()),
    }


class EmbeddedScorer:
    name = "embedded"

    def __init__(self, cfg: PreprocessConfig):
        self.cfg = cfg

    def assess(self, frames_rgb: np.ndarray) -> tuple[str, dict[str, Any]]:
        per_frame = [embedded_measures(f) for f in frames_rgb]
        m = {k: round(float(np.mean([p[k] for p in per_frame])), 3) for k in per_frame[0]}
        m["quality_score"] = m["sharpness"]  # the measure that varies most between clips
        c = self.cfg
        if m["sharpness"] < c.min_sharpness:
            return "blurry", m
        if m["brightness"] < c.min_brightness:
            return "too_dark", m
        if m["brightness"] > c.max_brightness:
            return "too_bright", m
        if m["contrast"] < c.min_contrast:
            return "low_contrast", m
        return "", m


class HyperIQAScorer:
    name = "hyperiqa"

    def __init__(self, cfg: PreprocessConfig, path: Path, device: str):
        from latentsync_core.data.hyper_iqa import load_hyper_iqa

        self.cfg, self.device = cfg, device
        self.model = load_hyper_iqa(path, device)

    def assess(self, frames_rgb: np.ndarray) -> tuple[str, dict[str, Any]]:
        import torch

        from latentsync_core.data.hyper_iqa import preprocess

        with torch.no_grad():
            scores = self.model(preprocess(frames_rgb).to(self.device))
        score = round(float(scores.mean()), 3)
        return ("" if score >= self.cfg.hyperiqa_threshold else "low_quality_score"), {"quality_score": score}


def quality_model_kind(cfg: PreprocessConfig) -> str:
    """``hyperiqa`` or ``embedded``, as ``quality_model`` and the weights on disk decide."""
    if cfg.quality_model != "auto":
        return cfg.quality_model
    return "hyperiqa" if (cfg.checkpoints() / "auxiliary" / HYPERIQA_FILE).is_file() else "embedded"


def make_scorer(cfg: PreprocessConfig, device: str = "cpu") -> QualityScorer:
    if quality_model_kind(cfg) == "hyperiqa":
        return HyperIQAScorer(cfg, cfg.checkpoints() / "auxiliary" / HYPERIQA_FILE, device)
    return EmbeddedScorer(cfg)


def export_clip(synced: Path, final: Path, crf: int) -> None:
    """The kept clip: H.264 (yuv420p) at 25 fps with AAC 16 kHz mono, published atomically."""
    with writing(final) as tmp:
        run_ffmpeg(
            ["-i", input_arg(synced), "-map", "0:v:0", "-map", "0:a:0"]
            + ["-c:v", "libx264", "-preset", "medium", "-crf", str(crf), "-pix_fmt", "yuv420p", "-r", str(FPS)]
            + ["-c:a", "aac", "-b:a", "128k", "-ar", str(SAMPLE_RATE), "-ac", "1", "-movflags", "+faststart", str(tmp)]
        )


def quality_segment(task: Task, cfg: PreprocessConfig, scorer: QualityScorer) -> Outcome:
    """One synced segment; a kept one is written to ``args['out']`` under clips/."""
    frames = read_all_frames(task.args["synced"], cfg.resolution)
    reason, found = scorer.assess(sample_frames(frames))
    found["quality_model"] = scorer.name
    if reason:
        return Outcome.reject(task, reason, **found)
    export_clip(Path(task.args["synced"]), Path(task.args["out"]), cfg.video_crf)
    outcome = Outcome.keep(task, frames=len(frames), **found)
    outcome.footage_s = len(frames) / FPS
    return outcome


def run(task: Task, cfg: PreprocessConfig, models: DeviceModels | None) -> Outcome:
    assert models is not None
    return quality_segment(task, cfg, models.scorer)
