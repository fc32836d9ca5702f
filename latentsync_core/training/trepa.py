"""TREPA: the temporal representation alignment loss of LatentSync's stage 2.

Both videos (the decoded one-step estimate and the ground truth) are resized frame by frame
to the encoder's input size (bicubic), mapped from [-1, 1] to [0, 1], encoded by the frozen
VideoMAE-v2 ViT-g into one feature vector per clip; the loss is the mean squared difference
of the two unit-length vectors, as upstream computes it.

Weights: upstream's file, ``checkpoints/auxiliary/vit_g_hybrid_pt_1200e_ssv2_ft.pth``
(:data:`TREPA_FILE`, VideoMAE-v2's release: ``{"module": state_dict}``), loaded strictly.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from latentsync_core.models.videomae import VIT_G_SSV2, VideoMAEConfig, VideoMAEEncoder
from latentsync_core.training.frozen import load_frozen

TREPA_FILE = "auxiliary/vit_g_hybrid_pt_1200e_ssv2_ft.pth"  # relative to the checkpoints folder


class TREPALoss(nn.Module):
    """``forward(x, y)`` on videos (B, 3, F, H, W) in [-1, 1] -> scalar TREPA loss (float32).

    ``y``'s features are computed without a graph when ``y`` needs no gradient (the ground
    truth never does), which halves the encoder's activation memory against upstream's
    two graphs; the value is the same. The encoder runs in its own dtype (``.to(dtype)``);
    ``gradient_checkpointing`` trades compute for the encoder's activations, as upstream's
    ``with_cp``.
    """

    def __init__(self, config: VideoMAEConfig = VIT_G_SSV2, gradient_checkpointing: bool = False):
        super().__init__()
        self.encoder = VideoMAEEncoder(config)
        self.encoder.gradient_checkpointing = gradient_checkpointing
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_file(
        cls, path: str | Path, config: VideoMAEConfig = VIT_G_SSV2, gradient_checkpointing: bool = False
    ) -> TREPALoss:
        """Strictly load the VideoMAE-v2 file (``WEIGHTS_MISSING`` / ``WEIGHTS_INVALID`` otherwise)."""
        encoder = load_frozen(lambda: VideoMAEEncoder(config), path, "TREPA (VideoMAE-v2)")
        with torch.device("meta"):
            loss = cls(config, gradient_checkpointing)
        loss.encoder = encoder
        encoder.gradient_checkpointing = gradient_checkpointing
        return loss

    def _encoder_input(self, video: torch.Tensor) -> torch.Tensor:
        b, c, f, h, w = video.shape
        size = self.encoder.config.img_size
        frames = video.transpose(1, 2).reshape(b * f, c, h, w)
        frames = F.interpolate(frames, size=(size, size), mode="bicubic")
        clip = frames.reshape(b, f, c, size, size).transpose(1, 2)
        dtype = self.encoder.head.weight.dtype
        return (clip / 2 + 0.5).clamp(0, 1).to(dtype)

    def features(self, video: torch.Tensor) -> torch.Tensor:
        """Unit-length clip features (B, D) in float32."""
        feats = self.encoder.forward_features(self._encoder_input(video))
        return F.normalize(feats.float(), p=2, dim=1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape or x.dim() != 5 or x.shape[1] != 3:
            raise ValueError(
                f"TREPA compares two (B, 3, F, H, W) videos of one shape, got {tuple(x.shape)} and {tuple(y.shape)}"
            )
        fx = self.features(x)
        if y.requires_grad:
            fy = self.features(y)
        else:
            with torch.no_grad():
                fy = self.features(y)
        return F.mse_loss(fx, fy)
