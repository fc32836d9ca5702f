"""A stand-in SyncNetV2 whose answers are known, for the tests of the offset rule."""

from __future__ import annotations

import torch
from torch import nn


class EnvelopeNet(nn.Module):
    """The lip embedding of a 5-frame clip is the grey level of each frame (of ``patch``, a
    (rows, cols) pair of slices, when given); the audio embedding the quantised log energy
    (MFCC 0) of each of its five 40 ms steps. Frames painted with the energy of the audio
    under them give equal embeddings exactly at the true alignment."""

    def __init__(self, low: float, high: float, patch: tuple[slice, slice] | None = None):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()), requires_grad=False)  # gives score_frames a device/dtype
        self.low, self.high, self.patch = low, high, patch

    def quantise(self, energy: torch.Tensor) -> torch.Tensor:
        return torch.clamp(torch.round((energy - self.low) / (self.high - self.low) * 255), 0, 255)

    def forward_lip(self, clips: torch.Tensor) -> torch.Tensor:
        if self.patch is not None:
            clips = clips[:, :, :, self.patch[0], self.patch[1]]
        return clips.mean(dim=(1, 3, 4))  # (B, 5)

    def forward_aud(self, windows: torch.Tensor) -> torch.Tensor:
        return self.quantise(windows[:, 0, 0, :].reshape(len(windows), 5, 4).mean(dim=2))
