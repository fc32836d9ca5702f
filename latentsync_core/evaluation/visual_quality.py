"""Visual quality of generated faces, with the scorers of the data pipeline's stage 7.

``hyperiqa``: upstream's HyperIQA (``auxiliary/koniq_pretrained.pkl``, KonIQ-10k scale 0-100)
when its weights exist; ``embedded-sharpness`` otherwise: the variance of the Laplacian of
the grey face at 256 px (``data/quality.py``; higher is sharper). The two are different
scales: every result carries the scorer's name and a report never mixes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import torch

from latentsync_core.data.stages.quality import HYPERIQA_FILE, MEASURE_SIZE, embedded_measures


class QualityMeasure(Protocol):
    name: str

    def __call__(self, faces_rgb: np.ndarray) -> float:
        """One number for (N, H, W, 3) uint8 RGB face crops (their mean)."""


def _at_measure_size(faces_rgb: np.ndarray) -> np.ndarray:
    return np.stack([cv2.resize(f, (MEASURE_SIZE, MEASURE_SIZE), interpolation=cv2.INTER_AREA) for f in faces_rgb])


class EmbeddedSharpness:
    name = "embedded-sharpness"

    def __call__(self, faces_rgb: np.ndarray) -> float:
        return float(np.mean([embedded_measures(f)["sharpness"] for f in _at_measure_size(faces_rgb)]))


class HyperIQAQuality:
    name = "hyperiqa"

    def __init__(self, path: Path, device: str | torch.device = "cpu"):
        from latentsync_core.data.hyper_iqa import load_hyper_iqa

        self.device = torch.device(device)
        self.model = load_hyper_iqa(path, self.device)

    @torch.no_grad()
    def __call__(self, faces_rgb: np.ndarray) -> float:
        from latentsync_core.data.hyper_iqa import preprocess

        # at 256 px, as the filter sees aligned faces: the 224 px centre crop is the face
        return float(self.model(preprocess(_at_measure_size(faces_rgb)).to(self.device)).mean())


def make_quality_measure(checkpoint_dir: Path, weights: str, device: str | torch.device = "cpu") -> QualityMeasure:
    """HyperIQA when ``checkpoint_dir/auxiliary/koniq_pretrained.pkl`` exists (official
    weights only), else the embedded sharpness."""
    path = Path(checkpoint_dir) / "auxiliary" / HYPERIQA_FILE
    if weights == "official" and path.is_file():
        return HyperIQAQuality(path, device)
    return EmbeddedSharpness()
