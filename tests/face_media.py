"""Test media with several faces, made with the real ffmpeg from the bundled talking head
(``assets/demo1_video.mp4``, 1080x1920, face near (590, 750), about 210 px wide).

``two_portraits`` is the issue's two-person clip exactly: the whole clip scaled to 540x960
beside a mirrored, time-shifted copy of itself (1080x960, faces ~100 px). The other media
use a 480x480 square crop around the face scaled to ``SIDE`` px (the face is then ~105 px:
the embedded dlib detector needs ~80), so two people side by side make a small frame that
is quick to detect and to lip-sync.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from latentsync_core.media.ffmpeg_bin import input_arg, run_ffmpeg
from latentsync_core.media.video_io import FrameReader, VideoWriter

ROOT = Path(__file__).resolve().parent.parent
DEMO_VIDEO = ROOT / "assets" / "demo1_video.mp4"
DEMO_AUDIO = ROOT / "assets" / "demo1_audio.wav"
SIDE = 240
CROP = "crop=480:480:350:520"
PORTRAIT_W, PORTRAIT_H = 540, 960  # each person of the two-person clip


def _square(start: float, seconds: float, extra: str = "") -> str:
    return f"fps=25,trim=start={start}:duration={seconds},setpts=PTS-STARTPTS,{CROP},scale={SIDE}:{SIDE}{extra}"


def _two_people(dst: Path, clip: Callable[[float], str], seconds: float, start: float, shift: float) -> Path:
    """``clip(start)`` (left) beside ``clip(start + shift)`` mirrored (right), with the left
    one's audio: H.264 + AAC."""
    graph = (
        f"[0:v]split[a][b];[a]{clip(start)}[l];[b]{clip(start + shift)},hflip[r];"
        f"[l][r]hstack=inputs=2[v];[0:a]atrim=start={start}:duration={seconds},asetpts=PTS-STARTPTS[s]"
    )
    args = ["-i", input_arg(DEMO_VIDEO), "-filter_complex", graph, "-map", "[v]", "-map", "[s]"]
    run_ffmpeg([*args, "-c:v", "libx264", "-crf", "12", "-pix_fmt", "yuv420p", "-c:a", "aac", str(dst)])
    return dst


def side_by_side(dst: Path, seconds: float = 2.0, start: float = 1.0, shift: float = 2.0) -> Path:
    """The clip's face square (left) beside a mirrored copy ``shift`` seconds later (right):
    two people of the same size, (2 * SIDE) x SIDE."""
    return _two_people(dst, lambda at: _square(at, seconds), seconds, start, shift)


def two_portraits(dst: Path, seconds: float = 2.0, start: float = 1.0, shift: float = 2.0) -> Path:
    """The issue's layout: the whole clip at 540x960 (left) beside a mirrored copy ``shift``
    seconds later (right): 1080x960."""
    scaled = f"scale={PORTRAIT_W}:{PORTRAIT_H}"
    return _two_people(
        dst, lambda at: f"fps=25,trim=start={at}:duration={seconds},setpts=PTS-STARTPTS,{scaled}", seconds, start, shift
    )


def shot_change(dst: Path, seconds: float = 1.0) -> Path:
    """One person for ``seconds``, then a cut to another (the mirrored clip 4 s later, in
    grey) at about the same place in the frame: SIDE x SIDE, H.264, no audio."""
    graph = (
        f"[0:v]split[a][b];[a]{_square(1.0, seconds)}[p];[b]{_square(5.0, seconds, ',hflip,hue=s=0')}[q];"
        "[p][q]concat=n=2:v=1:a=0[v]"
    )
    args = ["-i", input_arg(DEMO_VIDEO), "-filter_complex", graph, "-map", "[v]"]
    run_ffmpeg([*args, "-c:v", "libx264", "-crf", "12", "-pix_fmt", "yuv420p", str(dst)])
    return dst


def square_frames(folder: Path, count: int, start: float = 1.0, mirrored: bool = False) -> np.ndarray:
    """(count, SIDE, SIDE, 3) uint8 RGB frames of the face square from ``start`` seconds."""
    target = folder / f"square_{start}_{int(mirrored)}.mkv"
    graph = _square(start, count / 25 + 0.2, ",hflip" if mirrored else "")
    run_ffmpeg(["-i", input_arg(DEMO_VIDEO), "-vf", graph, "-an", "-c:v", "ffv1", str(target)])
    with FrameReader(target, SIDE, SIDE) as reader:
        frames = [f.copy() for _, f in zip(range(count), reader, strict=False)]
    assert len(frames) == count
    return np.stack(frames)


def write_lossless(path: Path, frames: np.ndarray, audio: Path | None = None) -> Path:
    """FFV1 (exact RGB) in .mkv, with FLAC audio when given."""
    writer = VideoWriter(path, frames.shape[2], frames.shape[1], audio_path=audio)
    for frame in frames:
        writer.write(frame)
    writer.close()
    return path
