"""MFCC features of SyncNetV2's audio branch, as python_speech_features computes them.

Upstream's evaluation calls ``python_speech_features.mfcc(audio, 16000)`` (version 0.6)
with every default: 25 ms rectangular frames every 10 ms, pre-emphasis 0.97, 512-point
power spectrum, 26 HTK-scale triangular filters, log, orthonormal DCT-II, 13 cepstra,
sine liftering (22) and the log frame energy in place of the first cepstrum. Written out
here with numpy so that the package is not needed; the tests compare with its numbers.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

import numpy as np

MFCC_FPS = 100  # 10 ms step
NUM_CEPSTRA = 13
_EPS = np.finfo(float).eps  # what a zero energy is replaced by before the log


def _round_half_up(value: float) -> int:
    # Frame sizes such as 0.025 * 44100 = 1102.5 round up, as the original does.
    return int(Decimal(value).quantize(Decimal("1"), rounding=ROUND_HALF_UP))


def _hz_to_mel(hz: float) -> float:
    return 2595.0 * math.log10(1.0 + hz / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


@lru_cache(maxsize=4)
def _filterbank(num_filters: int, nfft: int, sample_rate: int, low_hz: float, high_hz: float) -> np.ndarray:
    """(num_filters, nfft//2+1) triangles on whole FFT bins; peaks of height 1, no area norm."""
    mels = np.linspace(_hz_to_mel(low_hz), _hz_to_mel(high_hz), num_filters + 2)
    bins = np.floor((nfft + 1) * _mel_to_hz(mels) / sample_rate)
    bank = np.zeros((num_filters, nfft // 2 + 1))
    for j in range(num_filters):
        left, centre, right = bins[j], bins[j + 1], bins[j + 2]
        for i in range(int(left), int(centre)):
            bank[j, i] = (i - left) / (centre - left)
        for i in range(int(centre), int(right)):
            bank[j, i] = (right - i) / (right - centre)
    return bank


@lru_cache(maxsize=2)
def _dct_matrix(num_coeffs: int, size: int) -> np.ndarray:
    """First ``num_coeffs`` rows of the orthonormal DCT-II of length ``size``."""
    n = np.arange(size)
    k = np.arange(num_coeffs)[:, None]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * size)) * math.sqrt(2.0 / size)
    basis[0] /= math.sqrt(2.0)
    return basis


def _frames(signal: np.ndarray, frame_len: int, step: int) -> np.ndarray:
    """Overlapping frames; the last one is zero padded (at least one frame)."""
    count = 1 if len(signal) <= frame_len else 1 + math.ceil((len(signal) - frame_len) / step)
    padded = np.zeros((count - 1) * step + frame_len)
    padded[: len(signal)] = signal
    return np.lib.stride_tricks.sliding_window_view(padded, frame_len)[::step]


def mfcc(
    pcm: np.ndarray,
    sample_rate: int = 16000,
    num_cepstra: int = NUM_CEPSTRA,
    num_filters: int = 26,
    nfft: int = 512,
) -> np.ndarray:
    """(num_cepstra, T) float32 MFCC of mono samples, T = frames every 10 ms.

    ``pcm`` is taken at its own scale: upstream passes int16 values (not [-1, 1]), which
    shifts every log filter energy by a constant the network was trained with.
    """
    signal = np.asarray(pcm, dtype=np.float64).reshape(-1)
    if signal.size == 0:
        raise ValueError("mfcc of an empty signal")
    signal = np.concatenate([signal[:1], signal[1:] - 0.97 * signal[:-1]])
    frames = _frames(signal, _round_half_up(0.025 * sample_rate), _round_half_up(0.01 * sample_rate))
    power = np.abs(np.fft.rfft(frames, nfft, axis=1)) ** 2 / nfft
    energy = power.sum(axis=1)
    energy = np.where(energy == 0, _EPS, energy)
    filtered = power @ _filterbank(num_filters, nfft, sample_rate, 0.0, sample_rate / 2).T
    filtered = np.where(filtered == 0, _EPS, filtered)
    cepstra = np.log(filtered) @ _dct_matrix(num_cepstra, num_filters).T
    cepstra *= 1.0 + 11.0 * np.sin(np.pi * np.arange(num_cepstra) / 22.0)  # lifter L=22
    cepstra[:, 0] = np.log(energy)
    return cepstra.T.astype(np.float32)
