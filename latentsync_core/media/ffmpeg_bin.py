"""Locating and running the ffmpeg binary (system first, else the one imageio-ffmpeg ships).

Every call takes an argument list: no shell, so file names with spaces or quotes are safe.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from latentsync_core.errors import MediaError

__all__ = ["MediaError", "ffmpeg_exe", "ffprobe_exe", "input_arg", "run_ffmpeg"]


@lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary: ``$LATENTSYNC_FFMPEG``, the system's, or imageio-ffmpeg's."""
    explicit = os.environ.get("LATENTSYNC_FFMPEG")
    if explicit:
        return explicit
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise RuntimeError("ffmpeg not found: install it or the imageio-ffmpeg package") from exc
    return imageio_ffmpeg.get_ffmpeg_exe()


@lru_cache(maxsize=1)
def ffprobe_exe() -> str | None:
    """Path of ffprobe: ``$LATENTSYNC_FFPROBE``, else the system's; None means probing reads
    ffmpeg's own output (imageio-ffmpeg ships no ffprobe)."""
    return os.environ.get("LATENTSYNC_FFPROBE") or shutil.which("ffprobe")


def input_arg(path: str | Path) -> str:
    """An input path ffmpeg cannot mistake for an option or a protocol URL."""
    return "file:" + str(Path(path).resolve())


def run_ffmpeg(args: Sequence[str], timeout: float | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run ffmpeg with ``args`` (no shell); raise RuntimeError with its stderr on failure."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", *args]
    proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-5:]
        raise RuntimeError(f"ffmpeg failed ({proc.returncode}): " + " | ".join(tail))
    return proc
