from pathlib import Path

import numpy as np
import pytest

from latentsync_core.media.audio_io import load_audio
from latentsync_core.media.ffmpeg_bin import MediaError
from latentsync_core.media.probe import probe, probe_audio, probe_video
from latentsync_core.media.video_io import FrameReader, VideoWriter
from tests.media_helpers import make_audio, make_clip, read_frames, rotate_mp4


def test_probe_demo_clip(media_dir: Path) -> None:
    info = probe_video(media_dir / "demo1_video.mp4")
    assert (info.width, info.height, round(info.fps)) == (1080, 1920, 25)
    assert info.has_audio and 9.9 < info.duration < 10.1
    audio = probe_audio(media_dir / "demo1_audio.wav")
    assert not audio.has_video and audio.audio_sample_rate == 16000 and abs(audio.duration - 9.6) < 0.01


@pytest.mark.parametrize(
    ("content", "code"),
    [(b"", "EMPTY_FILE"), (b"hello, I am not a video", "INVALID_MEDIA")],
)
def test_probe_rejects_non_media(tmp_path: Path, content: bytes, code: str) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    with pytest.raises(MediaError) as err:
        probe_video(bad)
    assert err.value.code == code


def test_stream_kinds_are_checked(tmp_path: Path, media_dir: Path) -> None:
    with pytest.raises(MediaError) as err:
        probe_video(media_dir / "demo1_audio.wav")
    assert err.value.code == "NO_VIDEO_STREAM"
    silent_video = make_clip(media_dir / "demo1_video.mp4", tmp_path / "v.mp4", 0.5, audio=False)
    with pytest.raises(MediaError) as err:
        probe_audio(silent_video)
    assert err.value.code == "NO_AUDIO_STREAM"


def test_frames_are_resampled_to_25_fps(tmp_path: Path, media_dir: Path) -> None:
    clip = make_clip(media_dir / "demo1_video.mp4", tmp_path / "c30.mp4", 2.0, fps=30)
    assert round(probe(clip).fps) == 30
    frames = read_frames(clip, 360, 640)
    assert frames.shape == (50, 640, 360, 3)


def test_rotation_metadata_gives_displayed_size(tmp_path: Path, media_dir: Path) -> None:
    clip = make_clip(media_dir / "demo1_video.mp4", tmp_path / "c.mp4", 0.4)
    upright = read_frames(clip, 360, 640)
    for degrees in (90, 270):
        rotated = rotate_mp4(clip, tmp_path / f"rot{degrees}.mp4", degrees)
        info = probe_video(rotated)
        assert info.rotation in (90, -90, 270) and (info.width, info.height) == (640, 360)
        frames = read_frames(rotated, info.width, info.height)
        assert frames.shape[1:] == (360, 640, 3)
        # The decoder turned the picture, it did not squeeze it: a quarter turn of the
        # upright frames, one way or the other (the same pixels: rotation is lossless).
        turns = [np.rot90(upright, k, axes=(1, 2)) for k in (1, 3)]
        assert any(np.array_equal(frames, turned) for turned in turns)


def test_writer_round_trip_with_audio_and_odd_size(tmp_path: Path, media_dir: Path) -> None:
    audio = make_audio(media_dir / "demo1_audio.wav", tmp_path / "a.wav", 1.0)
    out = tmp_path / "o.mp4"
    writer = VideoWriter(out, 101, 61, audio)
    rng = np.random.default_rng(0)
    for _ in range(25):
        writer.write(rng.integers(0, 255, (61, 101, 3), dtype=np.uint8))
    writer.close()
    info = probe(out)
    assert info.has_video and info.has_audio and (info.width, info.height) == (102, 62)
    assert abs(info.duration - 1.0) < 0.1


def test_audio_loader(media_dir: Path, tmp_path: Path) -> None:
    samples = load_audio(media_dir / "demo1_audio.wav")
    assert samples.dtype == np.float32 and len(samples) == 153600
    assert load_audio(media_dir / "demo1_video.mp4").size > 150000  # audio track of a video
    with pytest.raises(MediaError):
        load_audio(tmp_path / "missing.wav")


def test_reader_stops_cleanly_on_truncated_file(tmp_path: Path, media_dir: Path) -> None:
    clip = make_clip(media_dir / "demo1_video.mp4", tmp_path / "c.mp4", 2.0)
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError):  # mp4 index at the end: the cut file is unreadable
        info = probe_video(cut)
        with FrameReader(cut, info.width, info.height) as reader:
            if sum(1 for _ in reader) == 0:
                raise MediaError("INVALID_VIDEO", "no frames")


def _chosen_binaries(env: dict[str, str]) -> tuple[int, str]:
    """(exit status, output) of choosing ffmpeg and ffprobe in a fresh process with ``env``."""
    import os
    import subprocess
    import sys

    code = "from latentsync_core.media.ffmpeg_bin import *; print(ffmpeg_exe()); print(ffprobe_exe())"
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, cwd=root,
                          capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout + done.stderr


def _fake_ffmpeg(folder: Path, first_line: str) -> Path:
    """An `ffmpeg` (and `ffprobe`) that only answers -version, as an old release would."""
    folder.mkdir(parents=True, exist_ok=True)
    for tool in ("ffmpeg", "ffprobe"):
        (folder / tool).write_text(f"#!/bin/sh\necho '{first_line.replace('ffmpeg', tool)}'\n")
        (folder / tool).chmod(0o755)
    return folder / "ffmpeg"


def test_an_ffmpeg_older_than_the_supported_one_is_skipped_or_refused(tmp_path: Path) -> None:
    import os

    import imageio_ffmpeg

    from latentsync_core.media.ffmpeg_bin import MIN_FFMPEG, ffmpeg_exe, ffmpeg_version

    assert ffmpeg_version(ffmpeg_exe()) is None or ffmpeg_version(ffmpeg_exe()) >= MIN_FFMPEG
    old = _fake_ffmpeg(tmp_path / "old", "ffmpeg version 4.4.2-0ubuntu0.22.04.1 Copyright (c) 2000-2021")
    path = {"PATH": f"{old.parent}:{os.environ['PATH']}", "LATENTSYNC_FFMPEG": "", "LATENTSYNC_FFPROBE": ""}
    # On PATH (a system ffmpeg): passed over for the wheel's, and its ffprobe with it.
    status, out = _chosen_binaries(path)
    assert status == 0 and out.splitlines()[:2] == [imageio_ffmpeg.get_ffmpeg_exe(), "None"], out
    assert "older than 5.1" in out
    # Named explicitly: refused with the version it has and the one needed.
    status, out = _chosen_binaries({**path, "LATENTSYNC_FFMPEG": str(old)})
    assert status != 0 and "is ffmpeg 4.4" in out and "the oldest supported is 5.1" in out
    # A supported system ffmpeg is taken, with the ffprobe installed beside it.
    new = _fake_ffmpeg(tmp_path / "new", "ffmpeg version 5.1.9-0+deb12u1 Copyright (c) 2000-2026")
    status, out = _chosen_binaries({**path, "PATH": f"{new.parent}:{os.environ['PATH']}"})
    assert status == 0 and out.splitlines()[:2] == [str(new), str(new.with_name("ffprobe"))], out
    # A git snapshot prints no release number: newer than any release.
    snapshot = _fake_ffmpeg(tmp_path / "git", "ffmpeg version N-112233-gabcdef0 Copyright (c) 2000-2026")
    status, out = _chosen_binaries({**path, "LATENTSYNC_FFMPEG": str(snapshot)})
    assert status == 0 and out.splitlines()[0] == str(snapshot), out
