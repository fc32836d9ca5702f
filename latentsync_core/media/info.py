"""What a probe says of a media file (``probe.py`` fills it; the limits check it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MediaInfo:
    container: str
    duration: float  # seconds, 0 when unknown
    has_video: bool
    has_audio: bool
    width: int = 0  # displayed size (after rotation)
    height: int = 0
    fps: float = 0.0
    rotation: int = 0  # degrees, as stored in the file's display matrix
    audio_sample_rate: int = 0
    video_codec: str = ""
    audio_codec: str = ""
