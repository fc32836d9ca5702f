"""The samplers a job may pick (``LipSyncParams.sampler``): diffusers schedulers built from
the one noise schedule of ``configs/scheduler_config.json``.

- ``ddim``: upstream's DDIM (timesteps spaced as upstream's config says, eta 0);
- ``dpmpp_2m``: DPM-Solver++ of order 2, multistep (diffusers' ``DPMSolverMultistepScheduler``,
  ``algorithm_type="dpmsolver++"``), its own defaults otherwise: evenly spaced timesteps from
  999 down, a first-order last step to sigma 0;
- ``unipc``: UniPC of order 2 (``UniPCMultistepScheduler``, bh2, predicting the clean latents).

The multistep solvers keep state between steps (the previous model outputs, a step
counter), so every 16-frame window gets a fresh copy of a scheduler set up once per job
(``Sampler.window``): a window's result then depends on nothing but its own inputs, and the
window split over devices keeps giving the same frames. None of the three draws random
numbers while stepping (DDIM at eta 0, the two ODE solvers), so a job's only draws stay
those fixed up front in ``WindowNoise``.
"""

from __future__ import annotations

import copy
from typing import Any, Protocol

import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler

from latentsync_core.configs.scheduler import SchedulerConfig
from latentsync_core.inference.params import check_sampler


class Scheduler(Protocol):
    """What the denoising loop uses of a diffusers scheduler."""

    timesteps: torch.Tensor
    init_noise_sigma: float

    def scale_model_input(self, sample: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor: ...

    def step(self, model_output: torch.Tensor, timestep: torch.Tensor, sample: torch.Tensor, **kwargs: Any) -> Any: ...


def _noise_schedule(cfg: SchedulerConfig) -> dict[str, Any]:
    """The training noise schedule, the same for every sampler."""
    return {
        "num_train_timesteps": cfg.num_train_timesteps,
        "beta_start": cfg.beta_start,
        "beta_end": cfg.beta_end,
        "beta_schedule": cfg.beta_schedule,
        "trained_betas": cfg.trained_betas,
    }


def build_scheduler(cfg: SchedulerConfig, sampler: str, steps: int) -> Scheduler:
    """A scheduler of ``sampler`` with its timesteps for ``steps`` steps set (on the CPU:
    no GPU sync per step). INVALID_SAMPLER for an unknown name."""
    schedule = _noise_schedule(cfg)
    scheduler: Any
    if check_sampler(sampler) == "ddim":
        scheduler = DDIMScheduler(
            **schedule,
            clip_sample=cfg.clip_sample,
            set_alpha_to_one=cfg.set_alpha_to_one,
            steps_offset=cfg.steps_offset,
        )
    elif sampler == "dpmpp_2m":
        # "dpmsolver++" is the deterministic variant: the "sde-" ones draw noise every step
        scheduler = DPMSolverMultistepScheduler(**schedule, solver_order=2, algorithm_type="dpmsolver++")
    else:
        scheduler = UniPCMultistepScheduler(**schedule, solver_order=2)
    scheduler.set_timesteps(steps)
    return scheduler


class WindowSchedule:
    """One window's pass through a sampler's timesteps."""

    def __init__(self, scheduler: Scheduler, step_kwargs: dict[str, Any]):
        self.scheduler, self._step_kwargs = scheduler, step_kwargs

    def scale_model_input(self, sample: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.scheduler.scale_model_input(sample, t)

    def step(self, prediction: torch.Tensor, t: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """The latents after step ``t``, given the (guided) noise ``prediction``."""
        return self.scheduler.step(prediction, t, latents, **self._step_kwargs).prev_sample


class Sampler:
    """One job's sampler on one device: its timesteps, and a fresh scheduler per window."""

    def __init__(self, cfg: SchedulerConfig, name: str, steps: int):
        self.name = check_sampler(name)
        self._prototype = build_scheduler(cfg, name, steps)
        self.timesteps: torch.Tensor = self._prototype.timesteps
        self.init_noise_sigma = float(self._prototype.init_noise_sigma)
        # eta 0: DDIM draws no noise (upstream's setting); the others take no such argument
        self._step_kwargs: dict[str, Any] = {"eta": 0.0} if name == "ddim" else {}

    def window(self) -> WindowSchedule:
        """A scheduler in the state ``set_timesteps`` leaves it in, shared with no other
        window (a copy: no history, step counter or cached sample carried over)."""
        return WindowSchedule(copy.deepcopy(self._prototype), self._step_kwargs)
