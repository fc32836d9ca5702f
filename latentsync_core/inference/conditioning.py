"""What the UNet is conditioned on, per window: the aligned faces (warped on a side
stream, one window ahead), the mask, the VAE latents of the masked face and of the
reference face (encoder moments from the template session, sampled with the window's
draws from ``WindowNoise``), and the audio tokens of each frame."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

from latentsync_core.audio.whisper_features import WhisperFeatureExtractor
from latentsync_core.inference.runners import VAERunner
from latentsync_core.inference.source import WINDOW, Window
from latentsync_core.inference.template_cache import TemplateSession
from latentsync_core.media.constants import FPS
from latentsync_core.models.vae import SCALING_FACTOR
from latentsync_core.vision.alignment import FaceAligner

MASK_PATH = Path(__file__).resolve().parent.parent / "vision" / "assets" / "mask.png"


def load_mask(resolution: int) -> torch.Tensor:
    """(3, r, r) float mask: 1 keeps the upper face, 0 is the mouth region to generate."""
    img = cv2.imread(str(MASK_PATH))
    if img is None:
        raise RuntimeError(f"mask image missing: {MASK_PATH}")
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    img = cv2.resize(img, (resolution, resolution), interpolation=cv2.INTER_LANCZOS4) / 255.0
    return torch.from_numpy(img).permute(2, 0, 1).float()


def with_aligned_faces(
    windows: Iterator[Window], resolution: int, device: torch.device, batch: int = WINDOW
) -> Iterator[Window]:
    """Adds each window's aligned faces ``(count, 3, r, r)`` in [-1, 1] (meant for a
    prefetch thread: on a GPU the warps run on their own stream). ``batch`` frames are
    warped at once (each frame's crop is the same whatever the batch: ``memory.py`` picks
    fewer for big frames, whose float copies are large)."""
    aligner = FaceAligner(resolution, device=device)
    side = torch.cuda.Stream(device) if device.type == "cuda" else None
    try:
        for window in windows:
            with torch.cuda.stream(side) if side is not None else contextlib.nullcontext():
                resized = np.concatenate(
                    [
                        aligner.model_faces(window.frames[s : s + batch], window.matrices[s : s + batch])
                        for s in range(0, window.count, batch)
                    ]
                )
            window.faces = torch.from_numpy(resized).permute(0, 3, 1, 2).float() / 127.5 - 1.0
            yield window
    finally:
        windows.close()


def sample_latents(moments: torch.Tensor, normal: torch.Tensor) -> torch.Tensor:
    """Scaled latents from encoder moments and standard normal draws ``normal`` (the mean's
    shape): the arithmetic of ``vae.encode(x).latent_dist.sample(generator)`` followed by the
    scaling factor, with the draws made beforehand (``WindowNoise``)."""
    dist = DiagonalGaussianDistribution(moments)
    return (dist.mean + dist.std * normal.to(dist.mean.device, dist.mean.dtype)) * SCALING_FACTOR


@dataclass
class Conditioning:
    latents: torch.Tensor  # (1, 9, count, h, w): mask, masked-face latents, reference latents
    audio: torch.Tensor  # (count, tokens, dim) audio tokens


class Conditioner:
    """One job's conditioning of its windows."""

    def __init__(self, vae: VAERunner, mask: torch.Tensor, features: torch.Tensor, dtype: torch.dtype):
        self.vae, self.mask, self.features, self.dtype = vae, mask, features, dtype
        latent_size = mask.shape[-1] // 8
        self.mask_latent = F.interpolate(mask[None, 0:1], size=(latent_size, latent_size)).to(dtype)

    def __call__(
        self, window: Window, faces: torch.Tensor, session: TemplateSession, normal: tuple[torch.Tensor, torch.Tensor]
    ) -> Conditioning:
        """``faces``: the window's aligned faces on the device; ``normal``: the window's draws
        for its masked-face and reference latents (``WindowNoise.window``)."""

        def encode(positions: np.ndarray) -> torch.Tensor:
            todo = faces[torch.from_numpy(positions).to(faces.device)]
            return torch.stack([self.vae.moments(todo * self.mask), self.vae.moments(todo)], dim=1)

        moments = session.moments(window.src_idx, encode, faces.device)
        masked = sample_latents(moments[:, 0], normal[0])
        reference = sample_latents(moments[:, 1], normal[1])
        mask = self.mask_latent.expand(window.count, -1, -1, -1)
        latents = torch.cat([_to_5d(mask), _to_5d(masked), _to_5d(reference)], dim=1)
        audio = WhisperFeatureExtractor.chunks(self.features, FPS, start=window.start, count=window.count)
        return Conditioning(latents, audio.to(faces.device, self.dtype))


def _to_5d(frames: torch.Tensor) -> torch.Tensor:
    """(f, c, h, w) -> (1, c, f, h, w)."""
    return frames.permute(1, 0, 2, 3).unsqueeze(0)
