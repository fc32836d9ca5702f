"""Stage 6, ``sync``: SyncNetV2 offset and confidence per segment; keep confident, nearly-synced
segments and correct their offset.

The rule is upstream's (``preprocess/sync_av.py``): keep when confidence >= threshold and
|offset| <= max_offset, then delay the audio by ``offset`` frames (``-itsoffset
offset/fps`` on the audio input there). A negative offset means the audio lags the video
(:mod:`latentsync_core.sync.offset`), so moving it by ``offset`` brings it back in line.
Where upstream leaves silence or cuts audio at one end, we drop the video frames that are
left without audio, so every kept frame has its own audio.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from latentsync_core.data.config import PreprocessConfig
from latentsync_core.data.items import Outcome, Task
from latentsync_core.data.segment_io import read_all_frames, read_pcm, write_lossless
from latentsync_core.media.constants import FPS, SAMPLES_PER_FRAME
from latentsync_core.sync import score_frames

if TYPE_CHECKING:
    from latentsync_core.data.stages import DeviceModels


def shift_plan(frames: int, offset: int) -> tuple[int, int, int]:
    """``(first frame, frames kept, first audio sample)`` after delaying the audio by
    ``offset`` frames (negative: advancing it): output frame ``j`` is input frame
    ``first + j`` and plays with audio from input sample ``first_sample + 640 j``."""
    if abs(offset) >= frames:
        raise ValueError(f"offset {offset} leaves nothing of {frames} frames")
    if offset >= 0:  # audio starts later: the first `offset` frames have no audio of their own
        return offset, frames - offset, 0
    return 0, frames + offset, -offset * SAMPLES_PER_FRAME  # audio starts earlier: skip its head


def apply_offset(frames: np.ndarray, pcm: np.ndarray, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames and int16 samples with the audio moved by ``offset`` frames, both trimmed to
    the part where they overlap (the audio is padded with silence if it ends early)."""
    first, kept, first_sample = shift_plan(len(frames), offset)
    audio = pcm[first_sample : first_sample + kept * SAMPLES_PER_FRAME]
    audio = np.pad(audio, (0, kept * SAMPLES_PER_FRAME - len(audio)))
    return frames[first : first + kept], audio


def sync_decision(confidence: float, offset: int, cfg: PreprocessConfig) -> str:
    """Empty when the segment is kept, else the reason it is not."""
    if confidence < cfg.sync_conf_threshold:
        return "low_sync_confidence"
    if abs(offset) > cfg.max_offset:
        return "offset_too_large"
    return ""


def sync_segment(task: Task, cfg: PreprocessConfig, syncnet: torch.nn.Module) -> Outcome:
    """One aligned segment; writes the offset-corrected ``args['out']``."""
    frames = read_all_frames(task.args["aligned"], cfg.resolution)
    pcm = read_pcm(task.args["aligned"])
    try:
        # SyncNetV2 takes BGR crops (syncnet_python reads frames with OpenCV).
        score = score_frames(syncnet, np.ascontiguousarray(frames[..., ::-1]), pcm, vshift=cfg.sync_vshift)
    except ValueError as exc:  # fewer than 6 frames of overlapping audio and video
        return Outcome.reject(task, "too_short_for_sync", error=str(exc))
    found = {"offset": score.offset, "confidence": round(score.lse_c, 4), "lse_d": round(score.lse_d, 4)}
    reason = sync_decision(score.lse_c, score.offset, cfg)
    if reason:
        return Outcome.reject(task, reason, **found)
    out_frames, out_pcm = apply_offset(frames, pcm, score.offset)
    write_lossless(Path(task.args["out"]), out_frames, cfg.resolution, out_pcm)
    outcome = Outcome.keep(task, frames_after_shift=len(out_frames), **found)
    outcome.footage_s = len(frames) / FPS
    return outcome


def run(task: Task, cfg: PreprocessConfig, models: DeviceModels | None) -> Outcome:
    assert models is not None
    return sync_segment(task, cfg, models.syncnet)
