"""Locating and running the ffmpeg binary (system first, else the one imageio-ffmpeg ships).

Every call takes an argument list: no shell, so file names with spaces or quotes are safe.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from latentsync_core.common.errors import MediaError
from latentsync_core.media.input_file import descriptor_of, inherited_fds

__all__ = [
    "MIN_FFMPEG", "MediaError", "capped", "collect_stderr", "ffmpeg_exe", "ffmpeg_version", "ffprobe_exe",
    "input_arg", "run_ffmpeg",
]

log = logging.getLogger(__name__)


# The oldest ffmpeg the project supports: Debian 12's 5.1, what most servers have. Older
# releases lack options the product and its tests use (``-fps_mode``, display matrices).
MIN_FFMPEG = (5, 1)
_VERSION = re.compile(r"ffmpeg version n?(\d+)\.(\d+)")


def ffmpeg_version(exe: str) -> tuple[int, int] | None:
    """``(major, minor)`` that ``exe -version`` prints; None for a build that prints no release
    number (a git snapshot: ``N-112345-g...``), which is newer than any release."""
    try:
        out = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise RuntimeError(f"ffmpeg at {exe} does not run: {exc}") from exc
    first = out.stdout.splitlines()[0] if out.stdout else ""
    if not first.startswith("ffmpeg version"):
        raise RuntimeError(f"{exe} is not ffmpeg (its -version printed {first[:80]!r})")
    found = _VERSION.match(first)
    return (int(found.group(1)), int(found.group(2))) if found else None


def _supported(version: tuple[int, int] | None) -> bool:
    return version is None or version >= MIN_FFMPEG


def _wheel_ffmpeg() -> str:
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise RuntimeError("ffmpeg not found: install it or the imageio-ffmpeg package") from exc
    return imageio_ffmpeg.get_ffmpeg_exe()


@lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary: ``$LATENTSYNC_FFMPEG`` (refused when older than
    ``MIN_FFMPEG``), else the system's when it is at least that version, else imageio-ffmpeg's."""
    minimum = ".".join(map(str, MIN_FFMPEG))
    explicit = os.environ.get("LATENTSYNC_FFMPEG")
    if explicit:
        version = ffmpeg_version(explicit)
        if not _supported(version):
            raise RuntimeError(
                f"LATENTSYNC_FFMPEG={explicit} is ffmpeg {'.'.join(map(str, version or ()))}; "
                f"the oldest supported is {minimum}: unset it to use the bundled one"
            )
        return explicit
    found = shutil.which("ffmpeg")
    if found:
        version = ffmpeg_version(found)
        if _supported(version):
            return found
        log.warning(
            "system ffmpeg %s at %s is older than %s: using the one imageio-ffmpeg ships",
            ".".join(map(str, version or ())), found, minimum,
        )
    return _wheel_ffmpeg()


@lru_cache(maxsize=1)
def ffprobe_exe() -> str | None:
    """Path of ffprobe: ``$LATENTSYNC_FFPROBE``, else the one installed beside the chosen ffmpeg
    (never another installation's, whose version could differ); None means probing reads
    ffmpeg's own output (imageio-ffmpeg ships no ffprobe)."""
    explicit = os.environ.get("LATENTSYNC_FFPROBE")
    if explicit:
        return explicit
    beside = Path(ffmpeg_exe()).with_name("ffprobe")
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


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


def collect_stderr(
    proc: subprocess.Popen, into: bytearray, limit: int = 65536, name: str = "ffmpeg-err"
) -> threading.Thread:
    """Read ``proc``'s stderr until it closes, keeping its first ``limit`` bytes in ``into``,
    on a daemon thread (started; join it after the process ends): ffmpeg never blocks on a
    full pipe, and a chatty one cannot grow ``into`` without bound."""
    assert proc.stderr is not None
    stderr = proc.stderr

    def drain() -> None:
        for chunk in iter(lambda: stderr.read(4096), b""):
            if len(into) < limit:
                into.extend(chunk)

    thread = threading.Thread(target=drain, name=name, daemon=True)
    thread.start()
    return thread
