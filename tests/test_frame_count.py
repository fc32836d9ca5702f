"""``count_video_frames`` counts the frames a file holds, with the real ffmpeg: frames
written by ``VideoWriter`` (with an audio track beside them, whose packets do not count)
and a B-frame H.264 clip cut from the demo."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latentsync_core.media.video_io import FrameReader, VideoWriter, count_video_frames
from tests.media_helpers import make_audio, make_clip


def test_counts_the_frames_written_not_the_audio_packets(tmp_path: Path, media_dir: Path) -> None:
    audio = make_audio(media_dir / "demo1_audio.wav", tmp_path / "a.wav", 1.0)
    out = tmp_path / "o.mp4"
    writer = VideoWriter(out, 64, 48, audio)
    rng = np.random.default_rng(1)
    for _ in range(23):
        writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    writer.close()
    assert count_video_frames(out) == 23


def test_counts_what_the_decoder_gives(tmp_path: Path, media_dir: Path) -> None:
    clip = make_clip(media_dir / "demo1_video.mp4", tmp_path / "c.mp4", 0.68, width=90, height=160)
    with FrameReader(clip, 90, 160) as reader:
        decoded = sum(1 for _ in reader)
    assert decoded == 17 and count_video_frames(clip) == decoded
