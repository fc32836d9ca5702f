"""Training StableSyncNet (``latentsync train syncnet``), as upstream's ``train_syncnet.py``.

Loss: the cosine similarity of the face-window and mel-window embeddings, read as the
probability that they are in sync, under binary cross-entropy against ``y`` (1 aligned,
0 shifted). AdamW, gradient clipping, optional gradient accumulation and fp16 autocast with
a loss scaler on CUDA (upstream's ``mixed_precision_training``).

Unlike upstream, which saves only the weights, a checkpoint holds the whole state (model,
optimizer, scaler, step, torch RNG, epoch and position in it), so ``--resume`` continues a
run exactly: a stopped and resumed run ends with the same parameters, bit for bit, as one
that never stopped. Validation reports loss and accuracy (similarity above 1/2 means
"in sync") on a fixed set of held-out samples; everything goes to TensorBoard.

``RUN/``: ``config.yaml`` (the merged config), ``checkpoints/checkpoint-<step>.pt`` (each
also loads as a StableSyncNet through its ``state_dict``; written and read by
``training.checkpoints``), ``tensorboard/``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from latentsync_core.common.errors import CodedError
from latentsync_core.configs.syncnet import SyncNetConfig
from latentsync_core.data.fileslists import read_fileslist
from latentsync_core.data.layout import Layout
from latentsync_core.models.stable_syncnet import StableSyncNet
from latentsync_core.storage.atomic import write_text_atomic
from latentsync_core.training.checkpoints import SYNCNET_PREFIX, CheckpointDir, read_checkpoint_file
from latentsync_core.training.syncnet_dataset import EpochSampler, SyncNetDataset

log = logging.getLogger(__name__)

VAL_SAMPLES_PER_BATCH = 640  # frames per validation batch, upstream's bound on memory


@dataclass
class TrainResult:
    step: int
    train_loss: float  # of the last optimizer step
    val: dict[str, float] = field(default_factory=dict)  # the last validation's loss and accuracy
    checkpoint: Path | None = None


def sync_loss(vision: torch.Tensor, audio: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean BCE of the cosine similarities against ``y`` (B, 1), and the similarities (B,).

    The embeddings end in a ReLU, so the similarity lies in [0, 1] up to rounding; it is
    clamped so that a 1 + 1 ulp does not stop training (BCE rejects it). Computed in float32
    with autocast off: CUDA autocast refuses BCE (unsafe in float16), and the UNet's stage-2
    loss, which uses this too, runs under autocast.
    """
    wide = torch.promote_types(vision.dtype, torch.float32)  # float64 stays float64 (checking runs)
    with torch.autocast(vision.device.type, enabled=False):
        sims = F.cosine_similarity(vision.to(wide), audio.to(wide)).clamp(0.0, 1.0)
        return F.binary_cross_entropy(sims, y.reshape(-1).to(wide)), sims


def visual_input(frames: torch.Tensor, lower_half: bool) -> torch.Tensor:
    """(B, F, 3, H, W) faces -> (B, F*3, H', W), the mouth half when ``lower_half``."""
    b, f, c, h, w = frames.shape
    stacked = frames.reshape(b, f * c, h, w)
    return stacked[:, :, h // 2 :, :] if lower_half else stacked


def syncnet_checkpoints(run: Path) -> CheckpointDir:
    """A SyncNet run's checkpoints: ``checkpoint-<step>.pt``, every one kept."""
    return CheckpointDir(run, keep_last=None, prefix=SYNCNET_PREFIX)


def checkpoints_in(run: Path) -> list[tuple[int, Path]]:
    """(step, path) of the run's checkpoints, oldest first."""
    return syncnet_checkpoints(run).saved()


class SyncNetTrainer:
    """One training run; :meth:`run` trains up to ``max_steps`` optimizer steps."""

    def __init__(self, cfg: SyncNetConfig, data_dir: Path, output_dir: Path, device: str | None = None):
        if cfg.data.latent_space:
            raise CodedError(
                "UNSUPPORTED_CONFIG",
                "latent-space SyncNet training (data.latent_space: true) is not supported; "
                "use a pixel config such as configs/syncnet/syncnet_16_pixel_attn.yaml",
            )
        self.cfg = cfg
        self.run_dir = Path(output_dir)
        self.checkpoints = syncnet_checkpoints(self.run_dir)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        layout = Layout(data_dir)
        cache = Path(cfg.data.audio_mel_cache_dir) if cfg.data.audio_mel_cache_dir else layout.root / "cache" / "mel"
        seed = cfg.run.seed
        self.train_set = SyncNetDataset(read_fileslist(layout.train_list), cfg.data, seed, cache)
        val_clips = read_fileslist(layout.val_list, missing_ok=True)
        # Validation draws from a different stream than training, always the same samples.
        self.val_set = SyncNetDataset(val_clips, cfg.data, seed + 1, cache) if val_clips else None
        per_step = cfg.data.batch_size * cfg.data.gradient_accumulation_steps
        self.sampler = EpochSampler(len(self.train_set), seed, min_samples=per_step)
        workers = cfg.data.num_workers
        self.loader = DataLoader(
            self.train_set,
            batch_size=cfg.data.batch_size,
            sampler=self.sampler,
            num_workers=workers,
            drop_last=True,
            persistent_workers=workers > 0,  # keeps each worker's decoded-clip cache across epochs
        )

        torch.manual_seed(seed)
        self.model = StableSyncNet(cfg.model).to(self.device).train()
        self.optimizer = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad], lr=cfg.optimizer.lr)
        self.amp = cfg.run.mixed_precision_training and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp)
        self.step = 0
        self.epoch = 0
        self.position = 0  # samples of the current epoch already consumed

    # -- state -------------------------------------------------------------------------

    def state(self) -> dict:
        state = {
            "state_dict": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "global_step": self.step,
            "epoch": self.epoch,
            "position": self.position,
            "torch_rng": torch.get_rng_state(),
            "config": OmegaConf.to_yaml(OmegaConf.structured(self.cfg)),
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def save(self) -> Path:
        path = self.checkpoints.save(self.step, self.state())
        log.info("saved %s", path)
        return path

    def load(self, path: Path) -> None:
        ckpt = read_checkpoint_file(path)
        try:
            self.model.load_state_dict(ckpt["state_dict"], strict=True)
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.scaler.load_state_dict(ckpt["scaler"])
            self.step, self.epoch, self.position = ckpt["global_step"], ckpt["epoch"], ckpt["position"]
            torch.set_rng_state(ckpt["torch_rng"])
            if self.device.type == "cuda" and "cuda_rng" in ckpt:
                torch.cuda.set_rng_state(ckpt["cuda_rng"], self.device)
        except (KeyError, TypeError, RuntimeError, ValueError) as exc:
            raise CodedError("CHECKPOINT_INVALID", f"cannot resume from {path}: {exc}") from exc
        log.info("resumed from %s at step %d", path, self.step)

    def prepare_output(self, resume: bool) -> None:
        """Resume from the newest checkpoint, or start a fresh run; never overwrite a run silently."""
        latest = self.checkpoints.resume_point(resume, required=False)
        if latest is not None:
            self.load(latest)
        elif resume:
            log.info("no checkpoint in %s: starting a new run", self.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.structured(self.cfg)))

    # -- training ------------------------------------------------------------------------

    def _forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        frames = visual_input(batch["frames"].to(self.device), self.cfg.data.lower_half)
        audio = batch["audio_samples"].to(self.device)
        y = batch["y"].to(self.device)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
            vision, sound = self.model(frames, audio)
        loss, sims = sync_loss(vision, sound, y)
        return loss, sims, y.reshape(-1)

    def _batches(self):
        """Training batches forever, moving the epoch and position along."""
        while True:
            self.sampler.set_position(self.epoch, self.position)
            for batch in self.loader:
                self.position += len(batch["y"])
                yield batch
            self.epoch, self.position = self.epoch + 1, 0

    def run(self, max_steps: int, progress: bool = True) -> TrainResult:
        accum = self.cfg.data.gradient_accumulation_steps
        writer = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=self.step)
        bar = tqdm(total=max_steps, initial=self.step, desc="syncnet", unit="step", disable=not progress)
        result = TrainResult(step=self.step, train_loss=float("nan"))
        batches = self._batches()
        saved_at = -1
        try:
            while self.step < max_steps:
                self.optimizer.zero_grad(set_to_none=True)
                step_loss = 0.0
                for _ in range(accum):
                    loss, _, _ = self._forward(next(batches))
                    self.scaler.scale(loss / accum).backward()
                    step_loss += loss.item() / accum
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optimizer.max_grad_norm)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.step += 1
                result.step, result.train_loss = self.step, step_loss
                writer.add_scalar("train/loss", step_loss, self.step)
                writer.add_scalar("train/lr", self.optimizer.param_groups[0]["lr"], self.step)
                bar.update(1)
                bar.set_postfix(loss=f"{step_loss:.4f}", epoch=self.epoch)
                if self.val_set is not None and self.step % self.cfg.run.validation_steps == 0:
                    result.val = self.validate()
                    for name, value in result.val.items():
                        writer.add_scalar(f"val/{name}", value, self.step)
                    log.info("step %d: validation %s", self.step, result.val)
                if self.step % self.cfg.ckpt.save_ckpt_steps == 0:
                    result.checkpoint, saved_at = self.save(), self.step
            if saved_at != self.step and self.step > 0:
                result.checkpoint = self.save()
        finally:
            bar.close()
            writer.close()
        return result

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Loss and accuracy on ``data.num_val_samples`` fixed held-out samples."""
        assert self.val_set is not None
        self.model.eval()
        batch_size = max(1, min(self.cfg.data.batch_size, VAL_SAMPLES_PER_BATCH // self.cfg.data.num_frames))
        keys = [(0, i) for i in range(self.cfg.data.num_val_samples)]
        total_loss, correct = 0.0, 0
        try:
            for begin in range(0, len(keys), batch_size):
                samples = [self.val_set[k] for k in keys[begin : begin + batch_size]]
                batch = {name: torch.stack([s[name] for s in samples]) for name in samples[0]}
                loss, sims, y = self._forward(batch)
                total_loss += loss.item() * len(samples)
                correct += int(((sims > 0.5) == (y > 0.5)).sum())
        finally:
            self.model.train()
        count = max(1, len(keys))
        return {"loss": total_loss / count, "accuracy": correct / count}


def train_syncnet(
    cfg: SyncNetConfig,
    data_dir: str | Path,
    output_dir: str | Path,
    max_steps: int | None = None,
    resume: bool = False,
    device: str | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train (or resume) a StableSyncNet on ``DATA``'s file lists into ``RUN``."""
    trainer = SyncNetTrainer(cfg, Path(data_dir), Path(output_dir), device)
    trainer.prepare_output(resume)
    return trainer.run(max_steps if max_steps is not None else cfg.run.max_train_steps, progress)
