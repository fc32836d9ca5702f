"""Sync scoring of face crops against speech with SyncNetV2 (upstream's evaluation).

Every 5-frame clip of 224 px BGR crops (starting at each frame) is paired with the 20
MFCC frames (0.2 s) that start at the same time; both are embedded and the offset search
of :mod:`latentsync_core.sync.offset` runs over the two sequences. Frames are 25 fps and
audio is 16 kHz, as the evaluation assumes (640 samples and 4 MFCC frames per video frame).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from latentsync_core.audio.mfcc import mfcc
from latentsync_core.media.constants import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME
from latentsync_core.models.syncnet_v2 import CLIP_FRAMES, MFCC_WINDOW
from latentsync_core.sync.offset import search_offset, shift_distances

MFCC_PER_FRAME = 4  # 100 MFCC frames/s over 25 video frames/s
CROP_SIZE = 224
MIN_FRAMES = CLIP_FRAMES + 1  # fewer leaves no clip to score
CONF_FILTER = 9  # median filter length of the per-frame confidence (upstream's choice)


@dataclass
class SyncScore:
    offset: int  # frames; negative: the audio lags the video
    lse_d: float  # mean embedding distance at the best offset (lower is better)
    lse_c: float  # median minus minimum of the mean distances (higher is better)
    mean_dists: np.ndarray  # (2*vshift+1,) mean distance per candidate shift
    frame_dist: np.ndarray  # (clips,) each clip's distance at the chosen offset
    frame_conf: np.ndarray  # (clips,) median mean distance minus frame_dist, median filtered
    vshift: int
    fps: float = FPS

    @property
    def offset_ms(self) -> float:
        return self.offset * 1000.0 / self.fps

    @property
    def num_clips(self) -> int:
        return len(self.frame_dist)

    def confidence_per_second(self) -> tuple[np.ndarray, np.ndarray]:
        """(start second, mean frame_conf) for every whole or partial second of clips."""
        seconds = (np.arange(self.num_clips) // self.fps).astype(int)
        starts = np.unique(seconds)
        return starts.astype(float), np.array([self.frame_conf[seconds == s].mean() for s in starts])


def median_filter(values: np.ndarray, size: int = CONF_FILTER) -> np.ndarray:
    """Running median with zeros beyond both ends (as ``scipy.signal.medfilt``)."""
    half = size // 2
    padded = np.pad(np.asarray(values, dtype=np.float64), half)
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, size), axis=1)


def _as_frames(frames_bgr: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(N, 224, 224, 3) uint8 tensor; other sizes are resized as upstream does (bilinear)."""
    frames = frames_bgr.cpu().numpy() if isinstance(frames_bgr, torch.Tensor) else np.asarray(frames_bgr)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected (N, H, W, 3) BGR frames, got shape {frames.shape}")
    if frames.shape[1:3] != (CROP_SIZE, CROP_SIZE):
        frames = np.stack([cv2.resize(f, (CROP_SIZE, CROP_SIZE)) for f in frames])
    return torch.from_numpy(np.ascontiguousarray(frames))


@torch.no_grad()
def embed_audio(syncnet: torch.nn.Module, cepstra: torch.Tensor, num_clips: int, batch_size: int = 20) -> torch.Tensor:
    """(num_clips, D) float32 CPU embeddings of the 20 MFCC frames under each clip start."""
    param = next(syncnet.parameters())
    out = []
    for first in range(0, num_clips, batch_size):
        starts = range(first, min(num_clips, first + batch_size))
        windows = torch.stack(
            [cepstra[:, s * MFCC_PER_FRAME : s * MFCC_PER_FRAME + MFCC_WINDOW] for s in starts]
        ).unsqueeze(1)
        out.append(syncnet.forward_aud(windows.to(param.device, param.dtype)).float().cpu())
    return torch.cat(out)


@torch.no_grad()
def embed_video(syncnet: torch.nn.Module, frames: torch.Tensor, num_clips: int, batch_size: int = 20) -> torch.Tensor:
    """(num_clips, D) float32 CPU embeddings of the 5-frame clips starting at 0..num_clips-1
    of ``frames`` (N, H, W, 3) uint8."""
    param = next(syncnet.parameters())
    out = []
    for first in range(0, num_clips, batch_size):
        # (B, 5, H, W, 3) uint8 -> (B, 3, 5, H, W): channels, then time, as the network expects
        clips = torch.stack([frames[s : s + CLIP_FRAMES] for s in range(first, min(num_clips, first + batch_size))])
        out.append(syncnet.forward_lip(clips.permute(0, 4, 1, 2, 3).to(param.device, param.dtype)).float().cpu())
    return torch.cat(out)


def embed_clips(
    syncnet: torch.nn.Module,
    frames: torch.Tensor,
    cepstra: torch.Tensor,
    num_clips: int,
    batch_size: int = 20,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(video, audio) float32 CPU embeddings (num_clips, D) of the clips starting at 0..num_clips-1."""
    return embed_video(syncnet, frames, num_clips, batch_size), embed_audio(syncnet, cepstra, num_clips, batch_size)


def score_frames(
    syncnet: torch.nn.Module,
    frames_bgr: np.ndarray | torch.Tensor,
    pcm: np.ndarray,
    vshift: int = 15,
    batch_size: int = 20,
) -> SyncScore:
    """Offset, LSE-D and LSE-C of 25 fps BGR face crops (N, H, W, 3) uint8 against int16
    mono 16 kHz speech ``pcm`` that starts with the first frame.

    Only the overlap of video and audio counts; it must be at least 6 frames.
    """
    frames = _as_frames(frames_bgr)
    pcm = np.asarray(pcm).reshape(-1)
    if not np.issubdtype(pcm.dtype, np.integer):
        # MFCCs of [-1, 1] floats are offset by a constant the network never saw: refuse them.
        raise ValueError(f"pcm must be int16 samples, got {pcm.dtype}")
    length = min(len(frames), len(pcm) // SAMPLES_PER_FRAME)
    if length < MIN_FRAMES:
        raise ValueError(f"too short to score: {length} frames of overlapping video and audio (need {MIN_FRAMES})")
    cepstra = torch.from_numpy(mfcc(pcm, SAMPLE_RATE))
    video, audio = embed_clips(syncnet, frames, cepstra, length - CLIP_FRAMES, batch_size)
    return score_embeddings(video, audio, vshift)


def score_embeddings(video: torch.Tensor, audio: torch.Tensor, vshift: int = 15) -> SyncScore:
    """The offset search over clip embeddings (clips, D) of video and audio, aligned in time."""
    dists = shift_distances(video, audio, vshift)
    offset, min_dist, conf, mean_dists = search_offset(dists, vshift)
    frame_dist = dists[:, vshift - offset].numpy()
    frame_conf = median_filter(float(torch.median(mean_dists)) - frame_dist)
    return SyncScore(
        offset=offset,
        lse_d=min_dist,
        lse_c=conf,
        mean_dists=mean_dists.numpy(),
        frame_dist=frame_dist,
        frame_conf=frame_conf.astype(np.float32),
        vshift=vshift,
    )
