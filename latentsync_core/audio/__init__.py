"""Audio conditioning features (Whisper encoder)."""

from latentsync_core.audio.whisper_features import WhisperFeatureExtractor

__all__ = ["WhisperFeatureExtractor"]
