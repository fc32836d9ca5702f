"""Audio conditioning features (Whisper encoder)."""

from latentsync_core.audio.mel import mel_spectrogram, mel_windows
from latentsync_core.audio.mfcc import mfcc
from latentsync_core.audio.whisper_features import WhisperFeatureExtractor

__all__ = ["WhisperFeatureExtractor", "mel_spectrogram", "mel_windows", "mfcc"]
