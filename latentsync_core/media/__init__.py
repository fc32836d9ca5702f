"""Media I/O through ffmpeg: probing, decoding, encoding and muxing."""

from latentsync_core.media.audio_io import load_audio
from latentsync_core.media.constants import SAMPLE_RATE
from latentsync_core.media.ffmpeg_bin import MediaError, ffmpeg_exe, run_ffmpeg

__all__ = ["SAMPLE_RATE", "MediaError", "ffmpeg_exe", "load_audio", "run_ffmpeg"]
