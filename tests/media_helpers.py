"""Making test media with the real ffmpeg."""

from __future__ import annotations

import struct
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


def _boxes(data: bytes | bytearray, start: int, end: int):
    """(type, payload start, box end) of the ISO-BMFF boxes in ``data[start:end]``."""
    while start + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, start)
        header = 8
        if size == 1:
            size, header = struct.unpack_from(">Q", data, start + 8)[0], 16
        yield kind, start + header, start + size
        start += size


def rotate_mp4(src: Path, dst: Path, degrees: int) -> Path:
    """A copy of the MP4 ``src`` whose video track's display matrix (``tkhd``) says ``degrees``
    (90 or 270): written byte by byte, as a phone does, so it needs no ffmpeg option (those
    changed between releases: ``-metadata:s:v rotate`` before 6.0, ``-display_rotation`` after)."""
    data = bytearray(src.read_bytes())
    one = 0x10000
    sin = {90: 1, 270: -1}[degrees]
    for kind, body, end in _boxes(data, 0, len(data)):
        if kind != b"moov":
            continue
        for trak, tbody, tend in _boxes(data, body, end):
            for box, payload, _ in _boxes(data, tbody, tend) if trak == b"trak" else ():
                if box != b"tkhd":
                    continue
                version = data[payload]
                matrix = payload + 4 + (32 if version == 1 else 20) + 16
                width, height = (v >> 16 for v in struct.unpack_from(">II", data, matrix + 36))
                if width and height:  # the video track (an audio track's size is 0 x 0)
                    shift = (height if sin > 0 else 0, width if sin < 0 else 0)
                    values = (0, sin * one, 0, -sin * one, 0, 0, shift[0] * one, shift[1] * one, 1 << 30)
                    struct.pack_into(">9i", data, matrix, *values)
    dst.write_bytes(bytes(data))
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
