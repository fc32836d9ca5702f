"""Per-clip audio conditioning computed once and kept on disk: Whisper encoder features
(the UNet's cross-attention input) and the mel spectrogram (StableSyncNet's input).

A clip's entry is keyed by its path, size and modification time plus the Whisper file's
identity, so a re-encoded clip or another Whisper never reads a stale entry. Entries are
written under a temporary name and renamed, so processes (data-loader workers, DDP ranks)
that compute the same clip at once each publish a whole file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from latentsync_core.audio.mel import mel_spectrogram
from latentsync_core.audio.whisper_features import WhisperFeatureExtractor
from latentsync_core.media.audio_io import load_audio
from latentsync_core.storage.atomic import writing


def _file_id(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


class AudioFeatureCache:
    """``whisper(clip)``: (T, layers+1, dim) float32 features at 50 frames/s;
    ``mel(clip)``: (80, M) float32 mel spectrogram at 80 frames/s."""

    def __init__(self, cache_dir: str | Path, whisper_path: str | Path):
        self.root = Path(cache_dir)
        self.whisper_path = Path(whisper_path)
        self._whisper: WhisperFeatureExtractor | None = None  # loaded on first miss (each worker its own)
        self._whisper_id = _file_id(self.whisper_path) if self.whisper_path.is_file() else "missing"

    def _key(self, clip: Path, extra: str) -> str:
        return hashlib.sha1(f"{_file_id(clip)}|{extra}".encode()).hexdigest()

    def whisper(self, clip: str | Path) -> torch.Tensor:
        clip = Path(clip)
        path = self.root / "whisper" / f"{self._key(clip, self._whisper_id)}.pt"
        if path.is_file():
            try:
                return torch.load(path, map_location="cpu", weights_only=True)
            except Exception:  # a damaged entry is recomputed
                path.unlink(missing_ok=True)
        if self._whisper is None:
            self._whisper = WhisperFeatureExtractor(self.whisper_path, device="cpu")
        features = self._whisper.features_from_samples(load_audio(clip)).contiguous()
        with writing(path) as tmp:
            torch.save(features, tmp)
        return features

    def mel(self, clip: str | Path) -> np.ndarray:
        clip = Path(clip)
        path = self.root / "mel" / f"{self._key(clip, 'mel')}.npy"
        if path.is_file():
            try:
                return np.load(path)
            except Exception:
                path.unlink(missing_ok=True)
        mel = mel_spectrogram(load_audio(clip)).astype(np.float32)
        with writing(path) as tmp, open(tmp, "wb") as fh:
            np.save(fh, mel)
        return mel
