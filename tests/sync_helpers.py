"""Sync nets whose answers are known, for the tests of the offset rule and of ``face=speaker``.

- ``EnvelopeNet``: a deterministic stand-in for SyncNetV2 (no training).
- Envelope clips (``make_envelope_data``) on which a tiny StableSyncNet learns sync in a
  test (``TINY_SYNCNET_CONFIG``, ``train_until_accurate``): the mouth half of every frame
  has the brightness of a random per-frame envelope, and the audio is noise whose loudness
  follows the same envelope. ``PatchScorer`` scores face crops with such a net.
"""

from __future__ import annotations

import wave
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from latentsync_core.audio.mel import mel_spectrogram, mel_window_length, window_start
from latentsync_core.configs.syncnet import SyncNetDataConfig
from latentsync_core.data.layout import Layout
from latentsync_core.media.video_io import VideoWriter
from latentsync_core.sync.score import score_embeddings
from latentsync_core.training.syncnet_trainer import SyncNetTrainer, TrainResult, visual_input


class EnvelopeNet(nn.Module):
    """The lip embedding of a 5-frame clip is the grey level of each frame (of ``patch``, a
    (rows, cols) pair of slices, when given); the audio embedding the quantised log energy
    (MFCC 0) of each of its five 40 ms steps. Frames painted with the energy of the audio
    under them give equal embeddings exactly at the true alignment."""

    def __init__(self, low: float, high: float, patch: tuple[slice, slice] | None = None):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()), requires_grad=False)  # gives score_frames a device/dtype
        self.low, self.high, self.patch = low, high, patch

    def quantise(self, energy: torch.Tensor) -> torch.Tensor:
        return torch.clamp(torch.round((energy - self.low) / (self.high - self.low) * 255), 0, 255)

    def forward_lip(self, clips: torch.Tensor) -> torch.Tensor:
        if self.patch is not None:
            clips = clips[:, :, :, self.patch[0], self.patch[1]]
        return clips.mean(dim=(1, 3, 4))  # (B, 5)

    def forward_aud(self, windows: torch.Tensor) -> torch.Tensor:
        return self.quantise(windows[:, 0, 0, :].reshape(len(windows), 5, 4).mean(dim=2))


# ---------------------------------------------------------------- envelope clips and a net that learns them

SIZE, FPS, RATE = 16, 25, 16000
SAMPLES_PER_FRAME = RATE // FPS
LEVELS = 4  # envelope values per frame: brightness 20..235, loudness 12 dB apart

# The last block is wider than GroupNorm's 32 groups: at 1x1 a one-channel group normalises
# to 0 and the embedding would not depend on the input.
TINY_SYNCNET_CONFIG = """
model:
  audio_encoder: {in_channels: 1, block_out_channels: [32, 32, 128],
                  downsample_factors: [[2, 1], 4, [10, 4]], attn_blocks: [0, 1, 0]}
  visual_encoder: {in_channels: 15, block_out_channels: [32, 32, 128],
                   downsample_factors: [[1, 2], 2, 4], attn_blocks: [0, 0, 0]}
ckpt: {save_ckpt_steps: 1000}
data: {batch_size: 16, num_workers: 0, num_frames: 5, resolution: 16, num_val_samples: 256, frame_cache_mb: 64}
optimizer: {lr: 1.0e-2, max_grad_norm: 1.0}
run: {validation_steps: 1000, mixed_precision_training: true, seed: 7}
"""


def random_envelope(rng: np.random.Generator, frames: int) -> np.ndarray:
    """Per frame, one of ``LEVELS`` levels in [0, 1]."""
    return rng.integers(LEVELS, size=frames) / (LEVELS - 1)


def mouth_grey(envelope: np.ndarray) -> np.ndarray:
    """The mouth's grey level (uint8) for each envelope level."""
    return (20 + 215 * np.asarray(envelope)).astype(np.uint8)


def envelope_speech(envelope: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """int16 16 kHz noise whose loudness follows ``envelope``: 4x amplitude (12 dB) per level
    step, far apart in the log-mel the audio encoder reads (the loudest level, 0.64, clips its
    peaks: still the loudest)."""
    noise = rng.standard_normal(len(envelope) * SAMPLES_PER_FRAME)
    audio = noise * np.repeat(0.01 * 4.0 ** (envelope * (LEVELS - 1)), SAMPLES_PER_FRAME)
    return (np.clip(audio, -1, 1) * 32767).astype(np.int16)


def write_wav(path: Path, pcm: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(np.asarray(pcm, np.int16).tobytes())
    return path


def write_envelope_clip(path: Path, envelope: np.ndarray, rng: np.random.Generator) -> None:
    """A SIZE px H.264 clip with AAC audio: grey upper half, mouth half at the envelope's grey."""
    wav = write_wav(path.with_suffix(".wav"), envelope_speech(envelope, rng))
    writer = VideoWriter(path, SIZE, SIZE, wav, crf=10)
    for grey in mouth_grey(envelope):
        frame = np.full((SIZE, SIZE, 3), 128, np.uint8)
        frame[SIZE // 2 :] = grey
        writer.write(frame)
    writer.close()
    wav.unlink()


def make_envelope_data(root: Path, seed: int = 0, clips: int = 8, seconds: int = 4) -> Path:
    """DATA as `latentsync preprocess` leaves it: clips/ and the two file lists (the last
    two clips held out)."""
    layout = Layout(root)
    layout.create()
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(clips):
        envelope = random_envelope(rng, seconds * FPS)
        paths.append(layout.clip(f"clip{i}"))
        write_envelope_clip(paths[-1], envelope, rng)
    layout.train_list.write_text("".join(f"{p}\n" for p in paths[:-2]))
    layout.val_list.write_text("".join(f"{p}\n" for p in paths[-2:]))
    return layout.root


def accuracy_bar(held_out: int) -> float:
    """Held-out accuracy 5 standard deviations above chance: a net that cannot tell aligned
    from shifted scores 1/2 with standard deviation 0.5 / sqrt(n) (one-sided chance 3e-7)."""
    return 0.5 + 5 * 0.5 / held_out**0.5


def train_until_accurate(
    trainer: SyncNetTrainer, bar: float, look_every: int, max_steps: int
) -> tuple[TrainResult, dict[str, float], list[tuple[int, float]]]:
    """Train, looking at the held-out accuracy every ``look_every`` steps, until it reaches
    ``bar`` or ``max_steps``: (last run result, last validation, (step, accuracy) looks)."""
    history = []
    for steps in range(look_every, max_steps + 1, look_every):
        result = trainer.run(max_steps=steps, progress=False)
        after = trainer.validate()
        history.append((steps, round(after["accuracy"], 3)))
        if after["accuracy"] >= bar:
            break
    return result, after, history


class PatchScorer:
    """A ``SpeakerScorer`` from a StableSyncNet trained on envelope clips: in each face crop
    the net sees the ``patch`` (rows, cols of the 224 px crop) where the test paints a mouth,
    scaled to its input, as the training clips show one; the confidence is LSE-C (median
    minus minimum of the mean embedding distances over +-``vshift`` frames), as sync scoring
    computes it from SyncNetV2's embeddings."""

    min_confidence = 0.0  # the tests ask which face speaks, never whether one does

    def __init__(self, net: nn.Module, data: SyncNetDataConfig, patch: tuple[slice, slice], vshift: int = 15):
        self.net, self.data, self.patch, self.vshift = net, data, patch, vshift

    def confidence(self, crops_bgr: np.ndarray, pcm: np.ndarray) -> float:
        n, size = self.data.num_frames, self.data.resolution
        patches = crops_bgr[:, self.patch[0], self.patch[1], ::-1]  # RGB, as the clips decode
        small = np.stack([cv2.resize(p, (size, size), interpolation=cv2.INTER_AREA) for p in patches])
        faces = torch.from_numpy(small).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        mel = mel_spectrogram(pcm.astype(np.float32) / 32768.0)
        length = mel_window_length(n)
        starts = [t for t in range(len(faces) - n + 1) if window_start(t) + length <= mel.shape[1]]
        image = visual_input(torch.stack([faces[t : t + n] for t in starts]), self.data.lower_half)
        audio = torch.stack([torch.from_numpy(mel[:, window_start(t) : window_start(t) + length]) for t in starts])
        with torch.no_grad():
            vision, sound = self.net.eval()(image, audio[:, None].float())
        return float(score_embeddings(vision.float(), sound.float(), self.vshift).lse_c)
