"""Decoding any audio (or the audio track of a video) to 16 kHz mono float32 samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latentsync_core.media.ffmpeg_bin import MediaError, input_arg, run_ffmpeg

SAMPLE_RATE = 16000


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Samples in [-1, 1) as float32, resampled to ``sample_rate`` mono through ffmpeg
    (16-bit PCM in between, as Whisper's own loader does)."""
    path = Path(path)
    if not path.is_file():
        raise MediaError("AUDIO_NOT_FOUND", f"audio file not found: {path.name}")
    try:
        proc = run_ffmpeg(
            [
                "-threads",
                "0",
                "-i",
                input_arg(path),
                "-vn",
                "-f",
                "s16le",
                "-acodec",
                "pcm_s16le",
                "-ac",
                "1",
                "-ar",
                str(sample_rate),
                "-",
            ]
        )
    except RuntimeError as exc:
        raise MediaError("INVALID_AUDIO", f"cannot decode audio from {path.name}: {exc}") from exc
    return np.frombuffer(proc.stdout, np.int16).astype(np.float32) / 32768.0


def to_int16(samples: np.ndarray) -> np.ndarray:
    """[-1, 1) float samples (as :func:`load_audio` gives) as int16, the scale MFCCs expect."""
    return np.clip(np.round(np.asarray(samples, np.float64) * 32768.0), -32768, 32767).astype(np.int16)
