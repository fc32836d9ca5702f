"""Opening an untrusted input file once and using that open file for everything after.

A path is only a name: between a check and a later read it can be replaced by a symlink to
a file elsewhere, or by a FIFO that blocks whoever opens it. So an input is opened once,
without following a symlink, without blocking (a FIFO opens at once, then fails the
regular-file check), and must be a regular file. Every later reader goes through the
descriptor: Python code opens ``/proc/self/fd/N`` (the same inode, whatever the name now
points to) and ffmpeg children get the descriptor with ``pass_fds`` and open the same
``/proc/self/fd/N`` name, each with its own file offset.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from latentsync_core.common.errors import MediaError

FD_DIR = "/proc/self/fd"
_NAMES: dict[str, str] = {}  # "/proc/self/fd/N" -> the name the file was opened by (for messages)


class InputFile:
    """A regular file held open read-only; ``path`` names it through the descriptor.

    ``follow_symlinks=False`` (a service's checked inputs) refuses a symlink as the last
    component; a library caller naming its own files may follow one."""

    def __init__(self, path: str | Path, follow_symlinks: bool = False):
        name = Path(path).name
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow_symlinks else os.O_NOFOLLOW)
        try:
            fd = os.open(path, flags)
        except FileNotFoundError as exc:
            raise MediaError("FILE_NOT_FOUND", f"file not found: {name}") from exc
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symlink
                raise MediaError("INPUT_NOT_REGULAR", f"{name} is a symbolic link, not a regular file") from exc
            if exc.errno == errno.ENXIO:  # a socket, or a FIFO without O_RDONLY semantics
                raise MediaError("INPUT_NOT_REGULAR", f"{name} is not a regular file") from exc
            raise MediaError("INPUT_UNREADABLE", f"cannot open {name} ({exc.strerror})") from exc
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise MediaError("INPUT_NOT_REGULAR", f"{name} is not a regular file")
            os.set_blocking(fd, True)  # a regular file: reads may block as usual
        except BaseException:
            os.close(fd)
            raise
        self.fd, self.name, self.size = fd, name, info.st_size
        self.path = Path(FD_DIR) / str(fd)
        _NAMES[str(self.path)] = name

    def close(self) -> None:
        if self.fd >= 0:
            _NAMES.pop(str(self.path), None)
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> InputFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def is_held(path: str | Path) -> bool:
    """Is ``path`` a descriptor path of an :class:`InputFile` that is open now?"""
    return str(path) in _NAMES


@contextmanager
def held_open(path: str | Path, follow_symlinks: bool = True) -> Iterator[Path]:
    """The descriptor path for ``path``: as it is when already held, else opened (a regular
    file, without blocking) for the duration of the block."""
    if is_held(path):
        yield Path(path)
        return
    with InputFile(path, follow_symlinks) as f:
        yield f.path


def display_name(path: str | Path) -> str:
    """The name to show for ``path`` (an input's own name rather than its descriptor number)."""
    return _NAMES.get(str(path), Path(path).name)


def descriptor_of(path: str | Path) -> int | None:
    """The descriptor number that a ``/proc/self/fd/N`` path names, else None."""
    text = str(path)
    head, _, tail = text.removeprefix("file:").rpartition("/")
    return int(tail) if head == FD_DIR and tail.isdigit() else None


def inherited_fds(cmd: list[str]) -> tuple[int, ...]:
    """The descriptors a child must inherit to open the ``/proc/self/fd/N`` inputs in ``cmd``."""
    return tuple(sorted({fd for arg in cmd if (fd := descriptor_of(arg)) is not None}))
