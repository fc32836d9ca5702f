"""The denoising loop with classifier-free guidance (zeroed audio is the unconditional
branch) and DeepCache (``DeepCacheState`` picks full or shallow UNet steps); the sampler
(DDIM by default, ``samplers.py``) steps the latents."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import torch
from diffusers import DDIMScheduler

from latentsync_core.configs.scheduler import SchedulerConfig
from latentsync_core.inference.conditioning import Conditioning
from latentsync_core.inference.params import LipSyncParams
from latentsync_core.inference.runners import UNetRunner
from latentsync_core.inference.samplers import Sampler, build_scheduler
from latentsync_core.models.unet import DEEPCACHE_INTERVAL, DeepCacheState


def make_scheduler(cfg: SchedulerConfig, steps: int) -> DDIMScheduler:
    """Upstream's DDIM scheduler (training uses its ``alphas_cumprod``)."""
    scheduler = build_scheduler(cfg, "ddim", steps)
    assert isinstance(scheduler, DDIMScheduler)
    return scheduler


class WindowNoise:
    """Every random number of a job, fixed before any window runs, so that the output does
    not depend on which device denoises which window.

    The numbers are those of one generator seeded with the job's seed, drawn in upstream's
    order: the initial latent noise (one image shared by every frame, which keeps the mouth
    texture consistent over time), then per window the masked-face and the reference-face
    latent samples, with the shapes of the VAE's ``latent_dist.sample`` (hence the same
    numbers, bit for bit, as drawing window after window). Only the generator's state at
    each window's start is kept (a few bytes per window); ``window(i)`` replays its draws.
    """

    def __init__(self, seed: int, counts: Sequence[int], latent_size: int, device: torch.device, dtype: torch.dtype):
        self.device, self.dtype, self.latent_size = device, dtype, latent_size
        self.counts = list(counts)
        self._generator = torch.Generator(device=device).manual_seed(seed)
        self.initial = self._randn((1, 4, 1, latent_size, latent_size))
        self._states: list[torch.Tensor] = []
        for count in self.counts:  # walk the sequence once: each window's start state
            self._states.append(self._generator.get_state())
            self._draw(count)
        self._lock = threading.Lock()  # lanes on several threads replay their windows

    def _randn(self, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randn(shape, generator=self._generator, device=self.device, dtype=self.dtype)

    def _draw(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (count, 4, self.latent_size, self.latent_size)
        masked = self._randn(shape)
        return masked, self._randn(shape)

    def window(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Window ``index``'s standard normal draws for its masked-face and reference-face
        latents, each ``(count, 4, h, w)`` on the job's first device."""
        with self._lock:
            self._generator.set_state(self._states[index])
            return self._draw(self.counts[index])


class Denoiser:
    """One job's denoising on one device: its sampler and the job's initial noise
    (``WindowNoise.initial``, copied to the device)."""

    def __init__(
        self,
        unet: UNetRunner,
        scheduler: SchedulerConfig,
        params: LipSyncParams,
        initial_noise: torch.Tensor,
        device: torch.device,
        check_cancelled: Callable[[], None],
    ):
        self.unet, self.check_cancelled = unet, check_cancelled
        self.sampler = Sampler(scheduler, params.sampler, params.inference_steps)
        self.timesteps = [t.reshape(1).to(device) for t in self.sampler.timesteps]
        self.guidance = params.guidance_scale
        self.deepcache_interval = DEEPCACHE_INTERVAL if params.enable_deepcache else 1
        self.noise = initial_noise.to(device) * self.sampler.init_noise_sigma

    @property
    def guided(self) -> bool:
        return self.guidance > 1.0

    def __call__(self, cond: Conditioning, progress: Callable[[int], None]) -> torch.Tensor:
        """(1, 4, count, h, w) denoised latents of one window; ``progress(steps_done)``
        after each step."""
        count = cond.audio.shape[0]
        latents = self.noise.expand(-1, -1, count, -1, -1).clone()
        image, audio = cond.latents, cond.audio
        if self.guided:  # one batch: unconditional (zeroed audio) first, then conditional
            image = torch.cat([image, image])
            audio = torch.cat([torch.zeros_like(audio), audio])
        deepcache = DeepCacheState(self.deepcache_interval)
        schedule = self.sampler.window()  # multistep samplers keep state: a fresh one per window
        for k, t in enumerate(self.sampler.timesteps):
            self.check_cancelled()
            inp = torch.cat([latents, latents]) if self.guided else latents
            inp = torch.cat([schedule.scale_model_input(inp, t), image], dim=1)
            pred = deepcache.step(self.unet.full, self.unet.shallow, inp, self.timesteps[k], audio)
            if self.guided:
                uncond, cond_pred = pred.chunk(2)
                pred = uncond + self.guidance * (cond_pred - uncond)
            # no sampler draws noise here, so the generator's sequence is WindowNoise's alone
            latents = schedule.step(pred, t, latents)
            progress(k + 1)
        return latents
