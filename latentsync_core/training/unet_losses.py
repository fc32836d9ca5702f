"""The UNet's training objective, as upstream's: noise-prediction MSE, and in pixel space
on the one-step x0 estimate decoded by the VAE: the StableSyncNet loss (BCE of the cosine
similarity against "in sync"), LPIPS on the lower half of the faces and TREPA on the
video, each with the config's weight. A loss network whose weight is 0 is never loaded.

Random draws are per sample (a generator per stream position), so a batch split over
processes draws what one process would.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from latentsync_core.common.errors import CodedError
from latentsync_core.configs.unet import RunConfig

SEED_STRIDE = 1_000_003  # separates the per-sample generators of different purposes


def sample_generator(seed: int, position: int, purpose: int) -> torch.Generator:
    """A CPU generator for one sample's draws of one kind (noise, timestep, latents)."""
    return torch.Generator().manual_seed((seed * SEED_STRIDE + position) * 7 + purpose)


def per_sample_normal(
    shape: Sequence[int], positions: Sequence[int], seed: int, purpose: int, device: torch.device
) -> torch.Tensor:
    """(len(positions), *shape) standard normal, each row from its own generator."""
    rows = [torch.randn(tuple(shape), generator=sample_generator(seed, p, purpose)) for p in positions]
    return torch.stack(rows).to(device)


def mixed_noise(
    shape: Sequence[int], positions: Sequence[int], seed: int, alpha: float | None, device: torch.device
) -> torch.Tensor:
    """(B, C, F, h, w) noise. ``alpha``: upstream's mixed noise (a part shared by every frame
    plus a per-frame part, variance 1 in total); None: one noise image for all frames."""
    c, f, h, w = shape
    shared = per_sample_normal((c, 1, h, w), positions, seed, 0, device).expand(-1, -1, f, -1, -1)
    if alpha is None:
        return shared.contiguous()
    own = per_sample_normal((c, f, h, w), positions, seed, 1, device)
    shared_std = (alpha**2 / (1 + alpha**2)) ** 0.5
    own_std = (1 / (1 + alpha**2)) ** 0.5
    return shared * shared_std + own * own_std


def per_sample_timesteps(positions: Sequence[int], seed: int, num_train_timesteps: int) -> torch.Tensor:
    return torch.cat(
        [torch.randint(0, num_train_timesteps, (1,), generator=sample_generator(seed, p, 2)) for p in positions]
    )


def add_noise(alphas_cumprod: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Forward diffusion q(x_t | x_0) (as DDIMScheduler.add_noise), in float32 at least."""
    wide = torch.promote_types(x0.dtype, torch.float32)
    a = alphas_cumprod.to(x0.device)[t].to(wide).view(-1, 1, 1, 1, 1)
    return (a.sqrt() * x0.to(wide) + (1 - a).sqrt() * noise.to(wide)).to(x0.dtype)


def predicted_x0(alphas_cumprod: torch.Tensor, xt: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """One-step estimate of x_0 from the predicted noise (DDIM's formula (12))."""
    wide = torch.promote_types(xt.dtype, torch.float32)
    a = alphas_cumprod.to(xt.device)[t].to(wide).view(-1, 1, 1, 1, 1)
    return (xt.to(wide) - (1 - a).sqrt() * eps.to(wide)) / a.sqrt()


def sync_loss(vision: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
    """SyncNet's loss against 1 ("in sync"): the one definition SyncNet training uses."""
    from latentsync_core.training.syncnet_trainer import sync_loss as cosine_bce

    return cosine_bce(vision, audio, torch.ones(vision.shape[0], 1, device=vision.device))[0]


@dataclass(frozen=True)
class LossWeights:
    recon: float
    sync: float
    lpips: float
    trepa: float

    @classmethod
    def from_run(cls, run: RunConfig, with_audio: bool) -> LossWeights:
        pixel = run.pixel_space_supervise
        return cls(
            recon=run.recon_loss_weight,
            sync=run.sync_loss_weight if (run.use_syncnet and with_audio) else 0.0,
            lpips=run.perceptual_loss_weight if pixel else 0.0,
            trepa=run.trepa_loss_weight if pixel else 0.0,
        )

    @property
    def needs_pixels(self) -> bool:
        return self.lpips > 0 or self.trepa > 0


def load_loss_network(module: str, class_name: str, path: str | Path, device: torch.device) -> nn.Module:
    """``latentsync_core.training.<module>.<class_name>.from_file(path)``, frozen, in eval
    mode; imported only here, so a run without the loss needs neither code nor weights."""
    path = Path(path)
    if not path.is_file():
        raise CodedError(
            "LOSS_WEIGHTS_MISSING", f"{class_name} weights not found: {path} (loss weight 0 trains without it)"
        )
    cls = getattr(importlib.import_module(f"latentsync_core.training.{module}"), class_name)
    net = cls.from_file(path).to(device).eval()
    net.requires_grad_(False)
    return net


def lower_half(images: torch.Tensor) -> torch.Tensor:
    """The mouth half of aligned faces (..., H, W) -> (..., H//2, W), as upstream crops it."""
    return images[..., images.shape[-2] // 2 :, :]
