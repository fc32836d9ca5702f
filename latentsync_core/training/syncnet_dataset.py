"""SyncNet training samples from the clips of ``latentsync preprocess`` (as upstream's SyncNetDataset).

A sample is a mel window of ``ceil(num_frames / 5 * 16)`` frames starting at a random video
frame ``s`` of a clip, and ``num_frames`` aligned faces: those starting at ``s`` (a positive,
``y = 1``) or at another random start of the same clip (a negative, ``y = 0``), each with
probability 1/2. Faces come resized to ``data.resolution`` and scaled to [-1, 1].

Unlike upstream (which draws from the global RNG and ignores the index), every draw of a
sample comes from a generator seeded by ``(seed, epoch, index)``: a sample is a pure
function of its key, so data loader workers, restarts and resumed runs all see the same
data. The sampler hands out those keys; where an epoch stopped is one integer.

Each clip's mel spectrogram is computed once and cached as ``.npy`` (upstream caches
``_mel.pt`` files the same way); decoded clips are kept in a per-process LRU cache of
``frame_cache_mb`` (0 disables it), which makes small fine-tuning sets cheap to revisit.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Sampler

from latentsync_core.audio.mel import mel_spectrogram, mel_window_length, window_start
from latentsync_core.common.errors import CodedError
from latentsync_core.configs.syncnet import SyncNetDataConfig
from latentsync_core.media.audio_io import load_audio
from latentsync_core.media.probe import probe_video
from latentsync_core.media.video_io import FrameReader
from latentsync_core.storage.atomic import writing

log = logging.getLogger(__name__)

MAX_TRIES = 50  # consecutive unusable clips before a sample gives up


class ClipFrames:
    """Decoded clips (uint8 (T, H, W, 3)), least recently used dropped beyond ``max_bytes``."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._clips: OrderedDict[Path, np.ndarray] = OrderedDict()
        self._bytes = 0

    def get(self, path: Path) -> np.ndarray:
        if path in self._clips:
            self._clips.move_to_end(path)
            return self._clips[path]
        info = probe_video(path)
        with FrameReader(path, info.width, info.height) as reader:
            frames = list(reader)
        clip = np.stack(frames) if frames else np.zeros((0, info.height, info.width, 3), np.uint8)
        if clip.nbytes <= self.max_bytes:
            self._clips[path] = clip
            self._bytes += clip.nbytes
            while self._bytes > self.max_bytes:
                _, dropped = self._clips.popitem(last=False)
                self._bytes -= dropped.nbytes
        return clip


class SyncNetDataset(Dataset):
    """``dataset[(epoch, index)]`` -> ``{"frames": (F, 3, R, R), "audio_samples": (1, 80, L), "y": (1,)}``.

    ``index`` picks the clip ``index % len(clips)`` (the next ones if it is unusable: shorter
    than two windows, or its audio shorter than the video).
    """

    def __init__(self, clips: Sequence[Path], cfg: SyncNetDataConfig, seed: int, cache_dir: Path):
        if not clips:
            raise CodedError("NO_TRAINING_DATA", "the file list names no clips")
        self.clips = [Path(c) for c in clips]
        self.cfg = cfg
        self.seed = seed
        self.cache_dir = Path(cache_dir)
        self.mel_length = mel_window_length(cfg.num_frames)
        self.frames = ClipFrames(cfg.frame_cache_mb * 2**20)

    def __len__(self) -> int:
        return len(self.clips)

    def mel(self, clip: Path) -> np.ndarray:
        """The clip's (80, T) mel spectrogram, from the cache or computed and cached."""
        tag = hashlib.sha1(str(clip.resolve()).encode()).hexdigest()[:10]
        cached = self.cache_dir / f"{clip.stem}-{tag}_mel.npy"
        if cached.is_file():
            try:
                return np.load(cached)
            except (OSError, ValueError) as exc:  # a damaged cache file is recomputed
                log.warning("recomputing the mel cache %s: %s", cached, exc)
        mel = mel_spectrogram(load_audio(clip, self.cfg.audio_sample_rate))
        with writing(cached) as tmp:
            np.save(tmp, mel)
        return mel

    def _starts(self, frames: int, mel_frames: int) -> int:
        """How many window starts fit both the video and the mel spectrogram."""
        count = frames - self.cfg.num_frames + 1
        while count > 0 and window_start(count - 1, self.cfg.video_fps) + self.mel_length > mel_frames:
            count -= 1
        return count

    def _faces(self, clip: np.ndarray, start: int) -> torch.Tensor:
        window = torch.from_numpy(clip[start : start + self.cfg.num_frames]).permute(0, 3, 1, 2).float()
        size = self.cfg.resolution
        if window.shape[-2:] != (size, size):
            window = F.interpolate(window, size=(size, size), mode="bicubic", antialias=True).clamp(0, 255)
        return window / 127.5 - 1.0

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, index = key
        rng = np.random.default_rng([self.seed, epoch, index])
        for attempt in range(MAX_TRIES):
            path = self.clips[(index + attempt) % len(self.clips)]
            mel = self.mel(path)
            clip = self.frames.get(path)
            starts = self._starts(len(clip), mel.shape[1])
            if len(clip) < 2 * self.cfg.num_frames or starts < 2:
                continue
            start = int(rng.integers(starts))
            wrong = int(rng.integers(starts - 1))
            wrong += wrong >= start  # uniform over the other starts
            positive = bool(rng.random() < 0.5)
            begin = window_start(start, self.cfg.video_fps)
            audio = torch.from_numpy(np.ascontiguousarray(mel[:, begin : begin + self.mel_length]))[None]
            return {
                "frames": self._faces(clip, start if positive else wrong),
                "audio_samples": audio.float(),
                "y": torch.tensor([1.0 if positive else 0.0]),
            }
        raise CodedError(
            "NO_USABLE_CLIPS",
            f"{MAX_TRIES} clips in a row from {self.clips[index % len(self.clips)].name} are shorter than "
            f"two {self.cfg.num_frames}-frame windows",
        )


class EpochSampler(Sampler):
    """Keys ``(epoch, index)`` of one epoch: a permutation of the clips seeded by ``(seed, epoch)``,
    repeated up to ``min_samples`` (so that a set smaller than one batch still trains), from
    ``start`` on (where a resumed run continues)."""

    def __init__(self, num_clips: int, seed: int, min_samples: int = 0):
        self.num_clips = num_clips
        self.seed = seed
        self.length = max(num_clips, min_samples)
        self.epoch = 0
        self.start = 0

    def set_position(self, epoch: int, start: int) -> None:
        self.epoch, self.start = epoch, start

    def order(self) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        rounds = -(-self.length // self.num_clips)
        perm = torch.cat([torch.randperm(self.num_clips, generator=g) for _ in range(rounds)])
        return perm[: self.length].tolist()

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for index in self.order()[self.start :]:
            yield (self.epoch, index)

    def __len__(self) -> int:
        return self.length - self.start
