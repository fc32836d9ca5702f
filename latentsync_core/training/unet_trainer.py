"""``latentsync train unet``: stage 1 or stage 2 of LatentSync's UNet, or a fine-tune of
a released one, on the clips of ``latentsync preprocess``.

A step: VAE latents of the target window, of the masked window and of the reference
window; per-sample noise and timestep; the UNet's noise prediction with the audio tokens;
noise MSE, and (stage 2) the pixel losses on the decoded one-step x0 estimate; backward
through the trainable parameters (with a grad scaler for float16), clipping, AdamW.
Checkpoints hold the whole state (``checkpoints.TrainState``), validation scores lip sync
(``validation``), TensorBoard gets losses, learning rate, sync scores and sample frames.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from diffusers import AutoencoderKL
from diffusers.optimization import get_scheduler
from torch.utils.checkpoint import checkpoint
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from latentsync_core.common.errors import CodedError
from latentsync_core.configs.loader import to_dict
from latentsync_core.configs.scheduler import load_scheduler_config
from latentsync_core.configs.syncnet import SyncNetConfig
from latentsync_core.configs.unet import UNetConfig
from latentsync_core.data.fileslists import read_fileslist
from latentsync_core.inference.conditioning import load_mask
from latentsync_core.inference.denoise import make_scheduler
from latentsync_core.inference.params import LipSyncParams
from latentsync_core.models.stable_syncnet import StableSyncNet
from latentsync_core.models.unet import UNet3DConditionModel
from latentsync_core.models.vae import SCALING_FACTOR
from latentsync_core.training import unet_losses as L
from latentsync_core.training.audio_cache import AudioFeatureCache
from latentsync_core.training.checkpoints import CheckpointDir, TrainState, capture_rng, read_state, restore_rng
from latentsync_core.training.distributed import DistInfo, barrier, wrap_ddp
from latentsync_core.training.unet_dataset import DatasetOptions, StepBatchSampler, UNetWindowDataset
from latentsync_core.training.unet_models import (
    WeightSource,
    build_unet,
    check_unet_state,
    load_frozen_vae,
    load_syncnet_supervisor,
    select_trainable,
)
from latentsync_core.training.validation import ValidationSet, Validator, is_better

log = logging.getLogger(__name__)
AMP_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class TrainOptions:
    data_dir: Path
    output_dir: Path
    weights: WeightSource
    max_steps: int | None = None  # stop at this global step (the schedule still spans run.max_train_steps)
    resume: bool = False
    progress: bool = True
    validate: bool = True
    # float64 checks the arithmetic (the DDP test compares runs to float64 rounding); not for training.
    dtype: torch.dtype = torch.float32


@dataclass
class TrainSummary:
    step: int
    losses: list[dict[str, float]] = field(default_factory=list)  # per step run by this call (rank 0: global mean)
    last_state: Path | None = None
    validations: list[dict] = field(default_factory=list)


class UNetTrainer:
    def __init__(self, cfg: UNetConfig, options: TrainOptions, info: DistInfo):
        self.cfg, self.opt, self.info = cfg, options, info
        run, dev = cfg.run, info.device
        if run.mixed_precision_dtype not in AMP_DTYPES:
            raise CodedError("CONFIG_INVALID", f"run.mixed_precision_dtype must be one of {sorted(AMP_DTYPES)}")
        self.amp = run.mixed_precision_training
        self.amp_dtype = AMP_DTYPES[run.mixed_precision_dtype]
        self.dtype = options.dtype
        if self.amp and self.dtype != torch.float32:
            raise CodedError("CONFIG_INVALID", "mixed precision trains float32 weights: turn it off for float64")
        frozen_dtype = self.amp_dtype if self.amp else self.dtype  # frozen networks: half memory under autocast
        self.unet = self.load_unet().to(self.dtype)
        self.trainable = select_trainable(self.unet, cfg)
        if run.enable_gradient_checkpointing:
            self.unet.enable_gradient_checkpointing()
        self.weights = L.LossWeights.from_run(run, cfg.model.add_audio_layer)
        self.vae = self.load_vae(frozen_dtype)
        if run.vae_gradient_checkpointing:
            self.vae.enable_gradient_checkpointing()
        self.syncnet = self.sync_cfg = None
        if self.weights.sync > 0:
            self.syncnet, self.sync_cfg = self.load_syncnet(frozen_dtype)
            if run.enable_gradient_checkpointing:
                self.syncnet.enable_gradient_checkpointing()
                self.syncnet.train()  # its checkpointing is on in train mode only (no dropout, no batch stats)
        self.lpips = L.load_loss_network("lpips", "LPIPSLoss", cfg.ckpt.lpips_path, dev) if self.weights.lpips else None
        self.trepa = L.load_loss_network("trepa", "TREPALoss", cfg.ckpt.trepa_path, dev) if self.weights.trepa else None
        self.alphas = make_scheduler(load_scheduler_config(), 1).alphas_cumprod.to(self.dtype)
        self.num_train_timesteps = load_scheduler_config().num_train_timesteps
        self.mask = load_mask(cfg.data.resolution).to(dev, self.dtype)
        lr = cfg.optimizer.lr * (info.world_size if cfg.optimizer.scale_lr else 1)
        self.optimizer = torch.optim.AdamW(
            self.trainable, lr=lr, eps=cfg.optimizer.adam_epsilon, weight_decay=cfg.optimizer.weight_decay
        )
        self.lr_scheduler = get_scheduler(
            cfg.optimizer.lr_scheduler, self.optimizer, cfg.optimizer.lr_warmup_steps, run.max_train_steps
        )
        self.scaler = torch.amp.GradScaler(dev.type, enabled=self.amp and self.amp_dtype == torch.float16)
        self.model = wrap_ddp(self.unet, info)
        self.checkpoints = CheckpointDir(options.output_dir, cfg.ckpt.keep_last)
        self.step = 0
        self.history: dict = {"validations": [], "best_lse_c": None}
        self.seed = run.seed

    # ---- the networks (a benchmark overrides these with random full-size ones) ------------
    def load_unet(self) -> UNet3DConditionModel:
        return build_unet(self.cfg, self.opt.weights, self.info.device)[0]

    def load_vae(self, dtype: torch.dtype) -> AutoencoderKL:
        return load_frozen_vae(self.opt.weights, self.info.device, dtype)

    def load_syncnet(self, dtype: torch.dtype) -> tuple[StableSyncNet, SyncNetConfig]:
        return load_syncnet_supervisor(self.cfg, self.opt.weights, self.info.device, dtype)

    # ---- state -----------------------------------------------------------------------
    def state(self) -> TrainState:
        return TrainState(
            step=self.step,
            unet={k: v.detach().cpu().clone() for k, v in self.unet.state_dict().items()},
            optimizer=self.optimizer.state_dict(),
            lr_scheduler=self.lr_scheduler.state_dict(),
            scaler=self.scaler.state_dict() if self.scaler.is_enabled() else None,
            rng=capture_rng(),
            model_config=to_dict(self.cfg.model),
            config=to_dict(self.cfg),
            global_batch=self.cfg.data.batch_size * self.info.world_size,
            history=self.history,
        )

    def load_state(self, path: Path) -> None:
        state = read_state(path)
        check_unet_state(self.unet, state.unet, str(path))
        self.unet.load_state_dict(state.unet)
        self.optimizer.load_state_dict(state.optimizer)
        self.lr_scheduler.load_state_dict(state.lr_scheduler)
        if state.scaler is not None and self.scaler.is_enabled():
            self.scaler.load_state_dict(state.scaler)
        restore_rng(state.rng)
        self.step, self.history = state.step, state.history
        global_batch = self.cfg.data.batch_size * self.info.world_size
        if state.global_batch != global_batch:
            log.warning("global batch %d, saved with %d: not the same run", global_batch, state.global_batch)
        log.info("resumed from %s at step %d", path, self.step)

    # ---- one step ----------------------------------------------------------------------
    def latents(self, pixels: torch.Tensor, positions: list[int], purpose: int) -> torch.Tensor:
        """(B, F, 3, r, r) -> (B, 4, F, r/8, r/8) scaled latents, sampled per sample."""
        b, f = pixels.shape[:2]
        with torch.no_grad():
            dist_ = self.vae.encode(pixels.flatten(0, 1).to(self.vae.dtype)).latent_dist
        mean = dist_.mean.to(self.dtype).unflatten(0, (b, f))
        eps = L.per_sample_normal(mean.shape[1:], positions, self.seed, purpose, mean.device).to(self.dtype)
        z = (mean + dist_.std.to(self.dtype).unflatten(0, (b, f)) * eps) * SCALING_FACTOR
        return z.permute(0, 2, 1, 3, 4)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, 4, F, h, w) -> (B*F, 3, r, r) pixels with gradients, ``vae_decode_chunk_frames``
        frames at a time, each chunk recomputed in the backward pass when chunked."""
        flat = latents.permute(0, 2, 1, 3, 4).flatten(0, 1) / SCALING_FACTOR
        flat = flat.to(self.vae.dtype)
        chunk = self.cfg.run.vae_decode_chunk_frames
        if chunk <= 0 or chunk >= len(flat):
            return self.vae.decode(flat).sample
        parts = [checkpoint(self._decode_chunk, part, use_reentrant=False) for part in flat.split(chunk)]
        return torch.cat(parts)

    def _decode_chunk(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(z).sample

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        dev, cfg = self.info.device, self.cfg
        positions = [int(p) for p in batch["position"]]
        gt = batch["gt"].to(dev, self.dtype)
        b, f = gt.shape[:2]
        gt_lat = self.latents(gt, positions, 3)
        masked_lat = self.latents(gt * self.mask, positions, 4)
        ref_lat = self.latents(batch["ref"].to(dev, self.dtype), positions, 5)
        h = gt_lat.shape[-1]
        mask_lat = F.interpolate(self.mask[None, 0:1], size=(h, h)).expand(b, f, -1, -1, -1).permute(0, 2, 1, 3, 4)
        alpha = cfg.run.mixed_noise_alpha if cfg.run.use_mixed_noise else None
        noise = L.mixed_noise(gt_lat.shape[1:], positions, self.seed, alpha, dev).to(self.dtype)
        t = L.per_sample_timesteps(positions, self.seed, self.num_train_timesteps).to(dev)
        noisy = L.add_noise(self.alphas, gt_lat, noise, t)
        unet_in = torch.cat([noisy, mask_lat, masked_lat, ref_lat], dim=1)
        audio = batch["audio"].to(dev, self.dtype) if cfg.model.add_audio_layer else None
        with torch.autocast(dev.type, dtype=self.amp_dtype, enabled=self.amp):
            pred = self.model(unet_in, t, encoder_hidden_states=audio, return_dict=False)[0]
        out = {"recon": F.mse_loss(pred.to(self.dtype), noise)}
        pixel_sync = self.weights.sync > 0 and cfg.run.pixel_space_supervise
        if self.weights.needs_pixels or self.weights.sync > 0:
            x0 = L.predicted_x0(self.alphas, noisy, pred, t)
            with torch.autocast(dev.type, dtype=self.amp_dtype, enabled=self.amp):
                pixels = self.decode(x0) if (self.weights.needs_pixels or pixel_sync) else None
                if self.lpips is not None:
                    out["lpips"] = self.lpips(L.lower_half(pixels).float(), L.lower_half(gt.flatten(0, 1)))
                if self.trepa is not None:
                    video = pixels.unflatten(0, (b, f)).transpose(1, 2).float()
                    out["trepa"] = self.trepa(video, gt.transpose(1, 2))
                if self.syncnet is not None:
                    out["sync"] = self._sync_loss(pixels if pixel_sync else None, x0, batch["mel"].to(dev), b, f)
        weights = {
            "recon": self.weights.recon,
            "sync": self.weights.sync,
            "lpips": self.weights.lpips,
            "trepa": self.weights.trepa,
        }
        out["loss"] = sum(weights[k] * v for k, v in out.items())
        return out

    def _sync_loss(self, pixels: torch.Tensor | None, x0: torch.Tensor, mel: torch.Tensor, b: int, f: int):
        assert self.syncnet is not None and self.sync_cfg is not None
        if pixels is not None:
            size = self.sync_cfg.data.resolution
            if pixels.shape[-1] != size:
                pixels = F.interpolate(pixels, size=(size, size), mode="bicubic")
            frames = pixels.unflatten(0, (b, f)).flatten(1, 2)  # (b, f*3, h, w)
        else:
            frames = x0.transpose(1, 2).flatten(1, 2)  # a latent-space SyncNet: (b, f*4, h, w)
        if self.sync_cfg.data.lower_half:
            frames = L.lower_half(frames)
        dtype = next(self.syncnet.parameters()).dtype
        vision, sound = self.syncnet(frames.to(dtype), mel.to(dtype))
        return L.sync_loss(vision, sound)

    def train_step(self, batch: dict) -> dict[str, float]:
        self.optimizer.zero_grad(set_to_none=True)
        out = self.losses(batch)
        self.scaler.scale(out["loss"]).backward()
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.trainable, self.cfg.optimizer.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.lr_scheduler.step()
        self.step += 1
        values = torch.stack([v.detach().float() for v in out.values()] + [grad_norm.float().reshape(())])
        if self.info.enabled:  # report the global batch's mean
            dist.all_reduce(values)
            values /= self.info.world_size
        return dict(zip([*out.keys(), "grad_norm"], values.tolist(), strict=True))

    # ---- the loop ----------------------------------------------------------------------
    def loader(self, start: int, end: int) -> DataLoader:
        cfg, opt = self.cfg, self.opt
        cache_dir = Path(cfg.data.audio_embeds_cache_dir or opt.data_dir / "cache" / "audio")
        dataset = UNetWindowDataset(
            read_fileslist(Path(cfg.data.train_fileslist or opt.data_dir / "fileslist_train.txt")),
            DatasetOptions(cfg.data.resolution, cfg.data.num_frames, self.seed, self.syncnet is not None),
            AudioFeatureCache(cache_dir, opt.weights.paths().whisper),
        )
        sampler = StepBatchSampler(cfg.data.batch_size, start, end, self.info.rank, self.info.world_size)
        workers = cfg.data.num_workers
        return DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=workers,
            persistent_workers=False,
            prefetch_factor=2 if workers else None,
        )

    def run(self, on_step: Callable[[int, dict], None] | None = None) -> TrainSummary:
        """Train from the current step to ``max_steps``; checkpoints every ``save_ckpt_steps``
        and at the end; validation every ``validation_steps`` (default: with checkpoints)."""
        cfg, info = self.cfg, self.info
        latest = self.checkpoints.resume_point(self.opt.resume, required=True)
        if latest is not None:
            self.load_state(latest)
        end = min(cfg.run.max_train_steps, self.opt.max_steps or cfg.run.max_train_steps)
        summary = TrainSummary(step=self.step)
        writer = self._writer()
        validator = self._validator() if self.opt.validate else None
        every_val = cfg.run.validation_steps or cfg.ckpt.save_ckpt_steps
        bar = tqdm(total=end, initial=self.step, desc="train unet", disable=not (info.is_main and self.opt.progress))
        self.unet.train()
        for batch in self.loader(self.step, end):
            values = self.train_step(batch)
            summary.losses.append(values)
            bar.update(1)
            bar.set_postfix(loss=f"{values['loss']:.4f}")
            if writer is not None:
                for key, value in values.items():
                    writer.add_scalar(f"train/{key}", value, self.step)
                writer.add_scalar("train/lr", self.lr_scheduler.get_last_lr()[0], self.step)
            if on_step is not None:
                on_step(self.step, values)
            if validator is not None and self.step % every_val == 0:
                summary.validations.append(self._validate(validator, writer))
            if self.step % cfg.ckpt.save_ckpt_steps == 0 or self.step == end:
                summary.last_state = self._save()
        bar.close()
        if writer is not None:
            writer.close()
        summary.step = self.step
        return summary

    def _save(self) -> Path | None:
        path = self.checkpoints.save(self.step, self.state().to_dict()) if self.info.is_main else None
        barrier(self.info)
        return path

    def _writer(self):
        if not self.info.is_main:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is the `train` extra
            log.warning("tensorboard is not installed (pip install 'latentsync-service[train]'): no curves logged")
            return None
        return SummaryWriter(str(self.opt.output_dir / "tensorboard"))

    def _validator(self) -> Validator | None:
        """Rank 0's validator, or None (other ranks, or no validation clips)."""
        if not self.info.is_main:
            return None
        from latentsync_core.audio.whisper_features import WhisperFeatureExtractor
        from latentsync_core.sync.video import load_syncnet_v2
        from latentsync_core.vision.face_detection import make_face_detector
        from latentsync_core.weights.official import MissingWeightsError

        cfg, dev, source = self.cfg, self.info.device, self.opt.weights
        vset = ValidationSet.from_data(
            self.opt.data_dir / "fileslist_val.txt",
            cfg.data.val_video_path,
            cfg.data.val_audio_path,
            cfg.run.num_val_clips,
        )
        if not vset.pairs:
            log.warning("no validation clips (fileslist_val.txt empty, no val_video_path): validation off")
            return None
        self.val_pairs = vset.pairs
        try:
            syncnet, _ = load_syncnet_v2(source.checkpoint_dir, source.kind, dev)
        except MissingWeightsError as exc:
            raise CodedError("WEIGHTS_MISSING", f"validation needs SyncNetV2: {exc}") from exc
        paths = source.paths()
        params = LipSyncParams(cfg.run.inference_steps, cfg.run.guidance_scale, cfg.run.seed)
        return Validator(
            self.vae,
            WhisperFeatureExtractor(paths.whisper, device=dev),
            make_face_detector(paths.auxiliary, str(dev)),
            syncnet,
            load_scheduler_config(),
            cfg.data.resolution,
            dev,
            params,
        )

    def _validate(self, validator, writer) -> dict:
        out_dir = self.opt.output_dir / "val" / f"step-{self.step:08d}"
        result = validator.run(self.unet, self.val_pairs, out_dir, self.step)
        record = {"step": self.step, **result.metrics(), "clips": result.clips}
        self.history["validations"].append(record)
        log.info(
            "validation at step %d: LSE-C %.3f LSE-D %.3f (%d clips)",
            self.step,
            result.lse_c,
            result.lse_d,
            result.scored,
        )
        if writer is not None and not math.isnan(result.lse_c):
            writer.add_scalar("val/lse_c", result.lse_c, self.step)
            writer.add_scalar("val/lse_d", result.lse_d, self.step)
        if writer is not None and result.sample_frames is not None:
            writer.add_images("val/sample", result.sample_frames, self.step, dataformats="NHWC")
        if is_better(result, self.history["best_lse_c"]):
            self.history["best_lse_c"] = result.lse_c
            self.checkpoints.save_best(self.step, self.state().to_dict(), result.metrics())
        return record
