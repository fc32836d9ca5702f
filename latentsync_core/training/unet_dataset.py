"""UNet training samples from the aligned clips of ``latentsync preprocess``.

A sample is a ``num_frames`` window of one clip (the frames to generate), a reference
window of the same clip that does not overlap it (``|ref - start| >= num_frames``, as
upstream), the Whisper tokens of each frame (the inference code's feature windows) and,
for the sync loss, the mel window under it.

Every random choice is a function of ``(seed, position)``: position ``p`` of the
infinite sample stream reads clip ``perm(epoch)[p % N]`` with ``epoch = p // N``, and
its windows come from a generator seeded with ``(seed, p)``. So a run's data position is
its global step, a resumed run reads exactly what an uninterrupted one would, and a
global batch is the same whether one process or several read it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from latentsync_core.audio.mel import mel_window_length, mel_windows
from latentsync_core.audio.whisper_features import WhisperFeatureExtractor
from latentsync_core.common.errors import CodedError
from latentsync_core.media.constants import FPS
from latentsync_core.media.video_io import FrameReader
from latentsync_core.training.audio_cache import AudioFeatureCache

log = logging.getLogger(__name__)

MAX_SKIPS = 64  # unusable clips tried in a row before a sample gives up


def min_clip_frames(num_frames: int) -> int:
    """The shortest clip in which every target window has a non-overlapping reference
    window: a start ``s`` needs ``s >= F`` or ``s <= n - 2F`` (upstream asks for 3F)."""
    return 3 * num_frames - 1


@dataclass(frozen=True)
class DatasetOptions:
    resolution: int
    num_frames: int
    seed: int
    with_mel: bool  # StableSyncNet's mel windows (sync loss)


class UNetWindowDataset(Dataset):
    """``dataset[p]`` is the sample at stream position ``p`` (any non-negative int)."""

    def __init__(self, clips: list[Path], options: DatasetOptions, audio: AudioFeatureCache):
        if not clips:
            raise CodedError("NO_TRAINING_CLIPS", "the training file list holds no clips")
        self.clips, self.opt, self.audio = list(clips), options, audio

    def __len__(self) -> int:  # positions are unbounded; this is one epoch
        return len(self.clips)

    def clip_at(self, position: int) -> int:
        epoch, offset = divmod(position, len(self.clips))
        perm = np.random.default_rng([self.opt.seed, epoch]).permutation(len(self.clips))
        return int(perm[offset])

    def __getitem__(self, position: int) -> dict[str, torch.Tensor | int | str]:
        rng = np.random.default_rng([self.opt.seed, 1, position])
        index = self.clip_at(position)
        for skip in range(MAX_SKIPS):
            clip = self.clips[(index + skip) % len(self.clips)]
            sample = self._sample(clip, rng)
            if sample is not None:
                sample["position"] = position
                return sample
        raise CodedError(
            "NO_USABLE_CLIPS",
            f"{MAX_SKIPS} clips in a row are shorter than {min_clip_frames(self.opt.num_frames)} frames or their "
            f"audio ends early (the last: {clip}); a clip needs about three windows of num_frames",
        )

    def _sample(self, clip: Path, rng: np.random.Generator) -> dict | None:
        f, r = self.opt.num_frames, self.opt.resolution
        frames = read_frames(clip, r)
        n = len(frames)
        if n < min_clip_frames(f):
            log.warning("skipping %s: %d frames, a sample needs %d", clip, n, min_clip_frames(f))
            return None
        start = int(rng.integers(0, n - f + 1))
        # The reference window never overlaps the target window (upstream's rule).
        candidates = [s for s in range(n - f + 1) if abs(s - start) >= f]
        ref = int(candidates[int(rng.integers(0, len(candidates)))])
        features = self.audio.whisper(clip)
        tokens = WhisperFeatureExtractor.chunks(features, FPS, start=start, count=f)
        sample: dict = {
            "gt": to_pixels(frames[start : start + f]),
            "ref": to_pixels(frames[ref : ref + f]),
            "audio": tokens,
            "clip": str(clip),
            "start": start,
        }
        if self.opt.with_mel:
            try:
                mel = mel_windows(self.audio.mel(clip), [start], mel_window_length(f))
            except ValueError:
                log.warning("skipping %s: its audio ends before frame %d", clip, start + f)
                return None
            sample["mel"] = torch.from_numpy(mel[0])
        return sample


def read_frames(clip: Path, resolution: int) -> np.ndarray:
    """(N, r, r, 3) uint8 RGB frames of an aligned clip at 25 fps, scaled to ``resolution``."""
    if not clip.is_file():
        raise CodedError("CLIP_NOT_FOUND", f"training clip not found: {clip}")
    with FrameReader(clip, resolution, resolution) as reader:
        frames = list(reader)
    if not frames:
        raise CodedError("CLIP_UNREADABLE", f"no video frames decoded from {clip}: {reader.errors.strip()[:200]}")
    return np.stack(frames)


def to_pixels(frames: np.ndarray) -> torch.Tensor:
    """(F, r, r, 3) uint8 -> (F, 3, r, r) float32 in [-1, 1]."""
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1.0


class StepBatchSampler(Sampler[list[int]]):
    """The positions this rank reads at each step, from ``start_step`` to ``end_step``:
    step ``s`` of a global batch ``G = batch_size * world_size`` covers positions
    ``[s*G, (s+1)*G)`` and rank ``r`` reads ``s*G + r*batch_size + [0, batch_size)``."""

    def __init__(self, batch_size: int, start_step: int, end_step: int, rank: int = 0, world_size: int = 1):
        self.batch_size, self.start, self.end = batch_size, start_step, end_step
        self.rank, self.world = rank, world_size

    def __len__(self) -> int:
        return max(0, self.end - self.start)

    def __iter__(self) -> Iterator[list[int]]:
        global_batch = self.batch_size * self.world
        for step in range(self.start, self.end):
            first = step * global_batch + self.rank * self.batch_size
            yield list(range(first, first + self.batch_size))
