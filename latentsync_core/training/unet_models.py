"""Everything a UNet run loads besides its data: the UNet (random, from a released
``latentsync_unet.pt``, or a run's training state), which of its parameters train, the
frozen VAE, Whisper, StableSyncNet, SyncNetV2 and the loss networks.

``official`` weights come from a checkpoint folder (the service's layout); ``demo``
weights are the service's small random ones, so a run can be tried on a CPU.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL
from torch import nn

from latentsync_core.common.errors import CodedError
from latentsync_core.configs.loader import to_dict
from latentsync_core.configs.syncnet import SyncNetConfig, load_syncnet_config
from latentsync_core.configs.unet import UNetConfig
from latentsync_core.models.checkpoint import CheckpointError, check_state_dict, load_strict, read_unet_checkpoint
from latentsync_core.models.stable_syncnet import StableSyncNet, load_stable_syncnet
from latentsync_core.models.unet import UNet3DConditionModel
from latentsync_core.models.vae import load_vae
from latentsync_core.weights.demo import demo_unet_config, ensure_demo_weights
from latentsync_core.weights.official import WeightPaths

log = logging.getLogger(__name__)

STABLE_SYNCNET_DEMO_SEED = 20240612


@dataclass
class WeightSource:
    kind: str  # "official" or "demo"
    checkpoint_dir: Path  # official: the files; demo: where the random ones are cached

    def paths(self) -> WeightPaths:
        if self.kind == "demo":
            return ensure_demo_weights(self.checkpoint_dir)
        if self.kind != "official":
            raise CodedError("INVALID_WEIGHTS_KIND", f"weights must be 'official' or 'demo', not {self.kind!r}")
        return WeightPaths.under(self.checkpoint_dir)


def checkpoint_error(exc: CheckpointError) -> CodedError:
    """A checkpoint problem as the coded error the command line reports."""
    code = "CHECKPOINT_NOT_FOUND" if "not found" in str(exc) else "CHECKPOINT_MISMATCH"
    return CodedError(code, str(exc))


def build_unet(cfg: UNetConfig, source: WeightSource, device: torch.device) -> tuple[UNet3DConditionModel, int]:
    """The starting UNet in float32 and its step: demo weights, ``ckpt.resume_ckpt_path``
    (a released ``latentsync_unet.pt``; keys must match exactly), or random (empty path)."""
    if source.kind == "demo":
        if to_dict(cfg.model) != to_dict(demo_unet_config()):
            raise CodedError("CONFIG_INVALID", "demo weights need the demo model section (configs/unet/demo.yaml)")
        init = str(source.paths().unet)
    else:
        init = cfg.ckpt.resume_ckpt_path
    if not init:
        torch.manual_seed(cfg.run.seed)
        return UNet3DConditionModel(cfg.model).to(device), 0
    try:
        state_dict, step = read_unet_checkpoint(init)
        with torch.device("meta"):
            unet = UNet3DConditionModel(cfg.model)
        load_strict(unet, state_dict, origin=init)
    except CheckpointError as exc:
        raise checkpoint_error(exc) from exc
    log.info("UNet initialised from %s (its step %d)", init, step)
    return unet.to(device=device, dtype=torch.float32), step


def check_unet_state(unet: nn.Module, state_dict: dict[str, torch.Tensor], origin: str) -> None:
    try:
        check_state_dict(unet, state_dict, origin)
    except CheckpointError as exc:
        raise checkpoint_error(exc) from exc


def select_trainable(unet: nn.Module, cfg: UNetConfig) -> list[nn.Parameter]:
    """Stage 2 (motion modules on): the parameters whose names contain one of
    ``run.trainable_modules``; stage 1 (no motion modules): all of them."""
    if not cfg.model.use_motion_module:
        unet.requires_grad_(True)
        return list(unet.parameters())
    patterns = list(cfg.run.trainable_modules)
    if not patterns:
        raise CodedError("CONFIG_INVALID", "run.trainable_modules is empty: nothing would train")
    unet.requires_grad_(False)
    chosen = []
    for name, param in unet.named_parameters():
        if any(p in name for p in patterns):
            param.requires_grad_(True)
            chosen.append(param)
    if not chosen:
        raise CodedError("CONFIG_INVALID", f"no UNet parameter name contains any of {patterns}")
    return chosen


def load_frozen_vae(source: WeightSource, device: torch.device, dtype: torch.dtype) -> AutoencoderKL:
    try:
        vae = load_vae(source.paths().vae, device=device, dtype=dtype)
    except CheckpointError as exc:
        raise checkpoint_error(exc) from exc
    vae.requires_grad_(False)
    return vae


def load_syncnet_supervisor(
    cfg: UNetConfig, source: WeightSource, device: torch.device, dtype: torch.dtype
) -> tuple[StableSyncNet, SyncNetConfig]:
    """The frozen StableSyncNet of ``data.syncnet_config_path`` (its ``ckpt.inference_ckpt_path``,
    loaded strictly; random from a fixed seed with demo weights)."""
    sync_cfg = load_syncnet_config(cfg.data.syncnet_config_path)
    if sync_cfg.data.num_frames != cfg.data.num_frames:
        raise CodedError(
            "CONFIG_INVALID",
            f"the sync loss needs num_frames == {sync_cfg.data.num_frames} (the SyncNet's window), "
            f"got {cfg.data.num_frames}; set run.use_syncnet=false or sync_loss_weight=0 for other lengths",
        )
    if source.kind == "demo":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(STABLE_SYNCNET_DEMO_SEED)
            net = StableSyncNet(sync_cfg.model).to(device=device, dtype=dtype)
    else:
        path = sync_cfg.ckpt.inference_ckpt_path
        if not path:
            raise CodedError("CONFIG_INVALID", f"{cfg.data.syncnet_config_path}: ckpt.inference_ckpt_path is empty")
        try:
            net = load_stable_syncnet(path, sync_cfg.model, device=device, dtype=dtype)
        except CheckpointError as exc:
            raise checkpoint_error(exc) from exc
    net.requires_grad_(False)
    return net, sync_cfg
