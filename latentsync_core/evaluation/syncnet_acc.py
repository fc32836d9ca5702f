"""``eval syncnet-acc``: StableSyncNet's accuracy on in-sync vs shifted windows, as upstream's
``eval/eval_syncnet_acc.py``: samples drawn as in training (``training/syncnet_dataset.py``:
each a mel window with the faces at the same start, y = 1, or at another start of the same
clip, y = 0, with probability 1/2), cosine similarity of the two embeddings above 1/2 read
as "in sync". Upstream draws from the global random state; ours are fixed by ``seed``, so
two checkpoints are measured on exactly the same samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from latentsync_core.common.errors import CodedError
from latentsync_core.configs.syncnet import DEFAULT_SYNCNET_CONFIG, load_syncnet_config
from latentsync_core.data.fileslists import read_fileslist
from latentsync_core.models.checkpoint import CheckpointError
from latentsync_core.models.stable_syncnet import load_stable_syncnet
from latentsync_core.training.syncnet_dataset import SyncNetDataset
from latentsync_core.training.syncnet_trainer import visual_input

THRESHOLD = 0.5


@dataclass
class SyncNetAccuracy:
    samples: int
    correct: int
    positives: int  # in-sync samples
    true_positives: int
    true_negatives: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.samples if self.samples else float("nan")

    def to_json(self) -> dict[str, float | int]:
        negatives = self.samples - self.positives
        return {
            "samples": self.samples,
            "accuracy": self.accuracy,
            "in_sync_accuracy": self.true_positives / self.positives if self.positives else float("nan"),
            "shifted_accuracy": self.true_negatives / negatives if negatives else float("nan"),
        }


@torch.no_grad()
def syncnet_accuracy(
    fileslist: str | Path,
    checkpoint: str | Path,
    config: str | Path = DEFAULT_SYNCNET_CONFIG,
    samples: int | None = None,
    seed: int = 1247,
    batch_size: int = 16,
    cache_dir: str | Path | None = None,
    device: str | None = None,
    progress: bool = True,
) -> SyncNetAccuracy:
    """Accuracy over ``samples`` windows (default: the config's ``num_val_samples``).
    Raises :class:`CodedError` ``NO_TRAINING_DATA`` (list), ``MISSING_WEIGHTS`` or
    ``INVALID_CHECKPOINT`` (the SyncNet file), ``NO_USABLE_CLIPS``."""
    cfg = load_syncnet_config(config)
    if cfg.data.latent_space:
        raise CodedError("UNSUPPORTED_CONFIG", "latent-space SyncNets are not supported; use a pixel config")
    clips = read_fileslist(Path(fileslist))
    path = Path(checkpoint)
    if not path.is_file():
        raise CodedError("MISSING_WEIGHTS", f"StableSyncNet checkpoint not found: {path}")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    try:
        model = load_stable_syncnet(path, cfg.model, dev)
    except CheckpointError as exc:
        raise CodedError("INVALID_CHECKPOINT", str(exc)) from exc
    cache = Path(cache_dir) if cache_dir else Path(fileslist).resolve().parent / "cache" / "mel"
    dataset = SyncNetDataset(clips, cfg.data, seed, cache)
    total = samples if samples is not None else cfg.data.num_val_samples
    result = SyncNetAccuracy(0, 0, 0, 0, 0)
    bar = tqdm(total=total, desc="syncnet-acc", unit="sample", disable=not progress)
    for begin in range(0, total, batch_size):
        items = [dataset[(0, i)] for i in range(begin, min(total, begin + batch_size))]
        frames = visual_input(torch.stack([s["frames"] for s in items]).to(dev), cfg.data.lower_half)
        audio = torch.stack([s["audio_samples"] for s in items]).to(dev)
        y = torch.cat([s["y"] for s in items]).to(dev) > 0.5
        vision, sound = model(frames, audio)
        predicted = F.cosine_similarity(vision.float(), sound.float()) > THRESHOLD
        result.samples += len(items)
        result.correct += int((predicted == y).sum())
        result.positives += int(y.sum())
        result.true_positives += int((predicted & y).sum())
        result.true_negatives += int((~predicted & ~y).sum())
        bar.update(len(items))
    bar.close()
    return result
