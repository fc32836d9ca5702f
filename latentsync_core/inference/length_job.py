"""A job's ``sync_mode`` applied once the source is planned (``length_modes.py`` decides;
this makes the job follow): the plan's output-to-source index, and for ``cut_off`` and
``silence`` the speech itself: cut to the output's length, or padded with silence (then
the Whisper features are computed again, so the padded frames are generated from silence:
a closed mouth). The speech muxed into the output is cut or padded the same way, from the
original file (its own sample rate and channels), into the job's work folder."""

from __future__ import annotations

import numpy as np
import torch

from latentsync_core.audio.whisper_features import WhisperFeatureExtractor
from latentsync_core.inference.context import JobContext
from latentsync_core.inference.length_modes import BOUNCE, plan_length
from latentsync_core.inference.source import SourcePlan
from latentsync_core.media.constants import FPS, SAMPLE_RATE
from latentsync_core.media.container import input_args
from latentsync_core.media.ffmpeg_bin import run_ffmpeg

SAMPLES_PER_FRAME = SAMPLE_RATE // FPS


def fit_length(
    ctx: JobContext,
    plan: SourcePlan,
    samples: np.ndarray,
    features: torch.Tensor,
    n_out: int,
    whisper: WhisperFeatureExtractor,
) -> tuple[np.ndarray, torch.Tensor, int]:
    """``(samples, features, output frames)`` of the job in its sync mode; sets ``plan.length``
    and, when the speech changes, ``ctx.audio_path``. ``bounce`` changes nothing (upstream's path)."""
    mode = ctx.params.sync_mode
    if mode == BOUNCE:
        return samples, features, n_out
    length = plan_length(mode, n_out, plan.frame_count)
    plan.length = length
    frames = length.frames
    if frames == n_out:
        return samples, features, n_out
    seconds = frames / FPS
    if frames < n_out:  # cut_off: the speech ends with the video (the features of the rest go unused)
        samples = samples[: frames * SAMPLES_PER_FRAME]
    else:  # silence: the video's rest is generated from silence
        samples = np.concatenate([samples, np.zeros(frames * SAMPLES_PER_FRAME - len(samples), samples.dtype)])
        features = whisper.features_from_samples(samples)
    fitted = ctx.work / "speech.fitted.wav"
    trim_or_pad = ["-vn", "-af", "apad", "-t", f"{seconds:.6f}", "-c:a", "pcm_s16le"]
    run_ffmpeg([*input_args(ctx.audio_path), *trim_or_pad, str(fitted)])
    ctx.audio_path = fitted
    return samples, features, frames
