"""The DDIM loop with classifier-free guidance (zeroed audio is the unconditional branch)
and DeepCache (``DeepCacheState`` picks full or shallow UNet steps)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers import DDIMScheduler

from latentsync_core.config import SchedulerConfig
from latentsync_core.inference.conditioning import Conditioning
from latentsync_core.inference.params import LipSyncParams
from latentsync_core.inference.runners import UNetRunner
from latentsync_core.models.unet import DEEPCACHE_INTERVAL, DeepCacheState


def make_scheduler(cfg: SchedulerConfig, steps: int) -> DDIMScheduler:
    scheduler = DDIMScheduler(
        num_train_timesteps=cfg.num_train_timesteps,
        beta_start=cfg.beta_start,
        beta_end=cfg.beta_end,
        beta_schedule=cfg.beta_schedule,
        clip_sample=cfg.clip_sample,
        set_alpha_to_one=cfg.set_alpha_to_one,
        steps_offset=cfg.steps_offset,
    )
    scheduler.set_timesteps(steps)  # on the CPU: no GPU sync per step
    return scheduler


class Denoiser:
    """One job's denoising: its scheduler, its random generator (seeded once; the windows'
    latent samples draw from it in order) and its initial noise, one image shared by every
    frame as upstream (it keeps the mouth texture consistent over time)."""

    def __init__(
        self,
        unet: UNetRunner,
        scheduler: SchedulerConfig,
        params: LipSyncParams,
        latent_size: int,
        device: torch.device,
        dtype: torch.dtype,
        check_cancelled: Callable[[], None],
    ):
        self.unet, self.check_cancelled = unet, check_cancelled
        self.scheduler = make_scheduler(scheduler, params.inference_steps)
        self.timesteps = [t.reshape(1).to(device) for t in self.scheduler.timesteps]
        self.guidance = params.guidance_scale
        self.deepcache_interval = DEEPCACHE_INTERVAL if params.enable_deepcache else 1
        self.generator = torch.Generator(device=device).manual_seed(params.seed)
        noise = torch.randn((1, 4, 1, latent_size, latent_size), generator=self.generator, device=device, dtype=dtype)
        self.noise = noise * self.scheduler.init_noise_sigma

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
        for k, t in enumerate(self.scheduler.timesteps):
            self.check_cancelled()
            inp = torch.cat([latents, latents]) if self.guided else latents
            inp = torch.cat([self.scheduler.scale_model_input(inp, t), image], dim=1)
            pred = deepcache.step(self.unet.full, self.unet.shallow, inp, self.timesteps[k], audio)
            if self.guided:
                uncond, cond_pred = pred.chunk(2)
                pred = uncond + self.guidance * (cond_pred - uncond)
            latents = self.scheduler.step(pred, t, latents, eta=0.0, generator=self.generator).prev_sample
            progress(k + 1)
        return latents
