"""The Wav2Lip-style mel spectrogram that StableSyncNet's audio branch reads.

Settings come from ``configs/audio.yaml`` (80 mels, 800-sample Hann window, hop 200 =
80 frames/s at 16 kHz, pre-emphasis 0.97, dB scaled and clipped to [-4, 4]). Upstream
computes it with librosa 0.10; librosa is not a dependency here, so the STFT (centred,
zero padded) and the Slaney mel filterbank are written out with numpy and checked
against upstream's numbers in the tests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from latentsync_core.configs.audio import AudioMelConfig, load_audio_config

MEL_FPS = 80  # mel frames per second at 16 kHz with hop 200
WINDOW_FRAMES = 52  # mel frames given to a 16-frame video window (ceil(16 / 5 * 16))
_STFT_BATCH = 2048  # frames per FFT batch: bounds memory on long audio


@lru_cache(maxsize=1)
def default_audio_config() -> AudioMelConfig:
    return load_audio_config().audio


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above (librosa's default, htk=False)."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / (200.0 / 3)
    log_part = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log_part, linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * (200.0 / 3)
    log_part = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
    return np.where(mel >= 15.0, log_part, linear)


@lru_cache(maxsize=4)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """(n_mels, n_fft//2+1) triangular filters, Slaney area-normalised, float32 as librosa stores them."""
    fft_hz = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    offsets = edges[:, None] - fft_hz[None, :]
    rising = -offsets[:-2] / widths[:-1, None]
    falling = offsets[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]  # equal area per filter ("slaney" norm)
    return weights.astype(np.float32)


def _stft_magnitude(samples: np.ndarray, n_fft: int, hop: int, win: int) -> np.ndarray:
    """|STFT| (n_fft//2+1, T) with a periodic Hann window, centred frames, zero padding."""
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(win) / win)
    if win < n_fft:  # a shorter window sits in the middle of the FFT frame
        left = (n_fft - win) // 2
        window = np.pad(window, (left, n_fft - win - left))
    padded = np.pad(samples, n_fft // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    out = np.empty((n_fft // 2 + 1, len(frames)), dtype=np.float64)
    for start in range(0, len(frames), _STFT_BATCH):
        chunk = frames[start : start + _STFT_BATCH] * window
        out[:, start : start + len(chunk)] = np.abs(np.fft.rfft(chunk, axis=1)).T
    return out


def mel_spectrogram(samples: np.ndarray, config: AudioMelConfig | None = None) -> np.ndarray:
    """Normalised log-mel spectrogram (num_mels, T) float32 of mono float samples at 16 kHz.

    ``samples`` are in [-1, 1] (int16 / 32768, as librosa loads a 16-bit wav); T is
    ``len(samples) // hop + 1``. ``rescale`` is not applied: upstream's spectrogram ignores it too.
    """
    cfg = config or default_audio_config()
    if cfg.use_lws:
        raise NotImplementedError("use_lws=true is not supported (upstream's configs use librosa's STFT)")
    if cfg.fmax > cfg.sample_rate // 2:
        raise ValueError(f"fmax {cfg.fmax} is above the Nyquist frequency of {cfg.sample_rate} Hz")
    hop = cfg.hop_size or int(cfg.frame_shift_ms / 1000 * cfg.sample_rate)
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    if cfg.preemphasize:
        x = np.concatenate([x[:1], x[1:] - cfg.preemphasis * x[:-1]])
    magnitude = _stft_magnitude(x, cfg.n_fft, hop, cfg.win_size or cfg.n_fft)
    basis = mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.num_mels, float(cfg.fmin), float(cfg.fmax))
    mel = basis.astype(np.float64) @ magnitude
    floor = 10.0 ** (cfg.min_level_db / 20.0)
    db = 20.0 * np.log10(np.maximum(floor, mel)) - cfg.ref_level_db
    if cfg.signal_normalization:
        db = _normalize(db, cfg)
    return db.astype(np.float32)


def _normalize(db: np.ndarray, cfg: AudioMelConfig) -> np.ndarray:
    """Map [min_level_db, 0] dB linearly onto [-max, max] (symmetric) or [0, max]."""
    unit = (db - cfg.min_level_db) / -cfg.min_level_db
    if cfg.symmetric_mels:
        out, low = 2 * cfg.max_abs_value * unit - cfg.max_abs_value, -cfg.max_abs_value
    else:
        out, low = cfg.max_abs_value * unit, 0.0
    if cfg.allow_clipping_in_normalization:
        out = np.clip(out, low, cfg.max_abs_value)
    return out


def mel_window_length(num_frames: int, video_fps: float = 25, mel_fps: int = MEL_FPS) -> int:
    """Mel frames under ``num_frames`` video frames: ``ceil(num_frames / 5 * 16)`` at 25 and
    80 frames per second (``WINDOW_FRAMES`` for 16 frames)."""
    return math.ceil(num_frames * mel_fps / video_fps)


def window_start(frame: int, video_fps: float = 25, mel_fps: int = MEL_FPS) -> int:
    """First mel frame of the window that starts at video frame ``frame``.

    Written as upstream's dataset writes it (fps division first) so that float rounding
    truncates to the same integer.
    """
    return int(float(mel_fps) * (frame / float(video_fps)))


def mel_windows(
    mel: np.ndarray, starts: Sequence[int], length: int = WINDOW_FRAMES, video_fps: float = 25
) -> np.ndarray:
    """(N, 1, num_mels, length) windows for video windows starting at frames ``starts``.

    A window that would run past the end of the spectrogram is an error: upstream skips
    such samples, so silently padding one would feed the network something it never saw.
    """
    mel = np.asarray(mel)
    out = np.empty((len(starts), 1, mel.shape[0], length), dtype=mel.dtype)
    for i, frame in enumerate(starts):
        begin = window_start(int(frame), video_fps)
        if begin < 0 or begin + length > mel.shape[1]:
            raise ValueError(f"mel window for video frame {frame} ({begin}:{begin + length}) exceeds {mel.shape[1]}")
        out[i, 0] = mel[:, begin : begin + length]
    return out
