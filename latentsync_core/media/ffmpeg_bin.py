"""Locating and running the ffmpeg binary (system first, else the one imageio-ffmpeg ships).

Every call takes an argument list: no shell, so file names with spaces or quotes are safe.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from latentsync_core.common.errors import MediaError
from latentsync_core.media.input_file import descriptor_of, inherited_fds

__all__ = ["MediaError", "capped", "ffmpeg_exe", "ffprobe_exe", "input_arg", "run_ffmpeg"]


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
    """An input path ffmpeg cannot mistake for an option or a protocol URL. A held input's
    descriptor path stays as it is (resolving it would go back to the name)."""
    if descriptor_of(path) is not None:
        return "file:" + str(path)
    return "file:" + str(Path(path).resolve())


# Sets an address-space limit, then becomes the command (exec keeps the pid and the
# descriptors passed down). A wrapper process rather than ``preexec_fn``: the service runs
# threads, and code between fork and exec in a threaded parent can deadlock.
_LIMIT_AS = (
    "import os,resource,sys;n=int(sys.argv[1]);"
    "resource.setrlimit(resource.RLIMIT_AS,(n,n));os.execv(sys.argv[2],sys.argv[2:])"
)


def capped(cmd: Sequence[str], memory_bytes: int | None) -> list[str]:
    """``cmd`` run with at most ``memory_bytes`` of address space (None: as it is)."""
    if not memory_bytes:
        return list(cmd)
    return [sys.executable, "-I", "-S", "-c", _LIMIT_AS, str(int(memory_bytes)), *cmd]


def run_ffmpeg(args: Sequence[str], timeout: float | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run ffmpeg with ``args`` (no shell); raise RuntimeError with its stderr on failure."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", *args]
    proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False, pass_fds=inherited_fds(cmd))
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-5:]
        raise RuntimeError(f"ffmpeg failed ({proc.returncode}): " + " | ".join(tail))
    return proc
