"""Making test media with the real ffmpeg."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latentsync_core.media.ffmpeg_bin import input_arg, run_ffmpeg
from latentsync_core.media.video_io import FrameReader


def make_clip(
    src: Path,
    dst: Path,
    seconds: float,
    start: float = 0.0,
    width: int = 360,
    height: int = 640,
    fps: int = 25,
    extra_filter: str | None = None,
    audio: bool = True,
) -> Path:
    """A short, small H.264 clip cut from ``src`` (the demo talking head)."""
    vf = f"scale={width}:{height},fps={fps}"
    if extra_filter:
        vf += "," + extra_filter
    args = ["-ss", f"{start}", "-t", f"{seconds}", "-i", input_arg(src), "-vf", vf, "-c:v", "libx264", "-crf", "12"]
    args += ["-pix_fmt", "yuv420p"]
    args += ["-c:a", "aac"] if audio else ["-an"]
    run_ffmpeg([*args, str(dst)])
    return dst


def make_audio(src: Path, dst: Path, seconds: float, silent: bool = False, start: float = 0.0) -> Path:
    if silent:
        args = ["-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", f"{seconds}"]
    else:
        args = ["-ss", f"{start}", "-t", f"{seconds}", "-i", input_arg(src), "-ac", "1", "-ar", "16000"]
    run_ffmpeg([*args, str(dst)])
    return dst


def read_frames(path: Path, width: int, height: int) -> np.ndarray:
    with FrameReader(path, width, height) as reader:
        return np.stack(list(reader))


def short_job_inputs(media_dir: Path, folder: Path) -> dict[str, Path]:
    """A short job's inputs for server tests: 1.2 s of the bundled talking head, 1 s of its
    speech (a job that finishes in seconds with demo weights), and the folder holding them."""
    return {
        "video": make_clip(media_dir / "demo1_video.mp4", folder / "clip.mp4", 1.2, start=1.0),
        "audio": make_audio(media_dir / "demo1_audio.wav", folder / "speech.wav", 1.0),
        "dir": folder,
    }
