"""One 16-frame window's stages on one device: conditioning (``conditioning.py``) ->
DDIM with guidance and DeepCache (``denoise.py``) -> decode and composite
(``composite.py``), ending with the finished frames on the host.

``DeviceModels`` is one device's share of the models as these stages use them (a
pipeline exposes its own as ``LipSyncPipeline.window_models``); ``WindowStages`` is one
job's stages built from them. Which device runs which window is ``window_split.py``'s
business, not this module's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch

from latentsync_core.configs.scheduler import SchedulerConfig
from latentsync_core.inference.composite import Compositor, to_host
from latentsync_core.inference.conditioning import Conditioner
from latentsync_core.inference.context import JobContext
from latentsync_core.inference.denoise import Denoiser, WindowNoise
from latentsync_core.inference.runners import UNetRunner, VAERunner
from latentsync_core.inference.source import Window
from latentsync_core.inference.template_cache import TemplateSession


@dataclass(frozen=True)
class DeviceModels:
    """What the per-window stages use of one device's models."""

    device: torch.device
    dtype: torch.dtype
    resolution: int
    unet: UNetRunner
    vae: VAERunner
    scheduler: SchedulerConfig
    mask: torch.Tensor  # (3, r, r) face mask on the CPU (``load_mask``)


@dataclass
class JobWindows:
    """What every window of a job shares, whichever device runs it."""

    ctx: JobContext
    features: torch.Tensor  # the speech's Whisper features
    noise: WindowNoise  # every random draw of the job, fixed before any window runs
    session: TemplateSession  # the source frames' encoder moments
    n_out: int  # output frames of the job


class WindowStages:
    """One job's per-window stages on one device, for windows given one at a time.
    ``check()`` runs between denoising steps (cancel, or another device's failure)."""

    def __init__(self, models: DeviceModels, job: JobWindows, check: Callable[[], None]):
        self.device = models.device
        self.job = job
        mask = models.mask.to(self.device)
        self.denoise = Denoiser(models.unet, models.scheduler, job.ctx.params, job.noise.initial, self.device, check)
        self.condition = Conditioner(models.vae, mask, job.features, models.dtype)
        self.composite = Compositor(models.vae, mask, models.resolution, self.device)

    def run(
        self,
        index: int,
        window: Window,
        wait: Callable[[], None],
        stored: Callable[[], None],
        on_step: Callable[[int], None],
    ) -> torch.Tensor:
        """Window ``index``'s output frames (count, H, W, 3) uint8 on the host. ``wait()``
        returns once earlier windows stored the moments this one reuses; ``stored()`` says
        this one stored its new ones; ``on_step(k)`` after each denoising step."""
        device = self.device
        on_gpu = device.type == "cuda"
        with torch.no_grad(), torch.cuda.device(device) if on_gpu else contextlib.nullcontext():
            frames = window.frames.to(device, non_blocking=True)
            faces = window.faces.to(device, non_blocking=True)
            normal = tuple(t.to(device) for t in self.job.noise.window(index))
            wait()
            cond = self.condition(window, faces, self.job.session, normal)  # stores new moments
            stored()
            latents = self.denoise(cond, on_step)
            out = self.composite(latents, window, faces, frames)
            host, copied = to_host(out)  # on this device's stream, so this thread waits for it
            if copied is not None:
                copied.synchronize()
        return host
