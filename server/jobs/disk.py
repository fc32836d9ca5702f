"""The data folder's disk: is there room for work, and is an error a full disk?

A full disk must cost one upload or one job, never the service: uploads that hit it answer
507 ``INSUFFICIENT_STORAGE`` (``server.api.errors.insufficient_storage``), jobs fail with
that code, and ``/ready`` says 503 while the free space is below the ``min_free_mb``
setting (new work is refused before it starts).
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

CODE = "INSUFFICIENT_STORAGE"
# No space, over quota, or over a file-size limit (RLIMIT_FSIZE): each means "cannot write more here".
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_SQLITE_FULL = 13  # SQLITE_FULL: "database or disk is full"


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) says the disk cannot take more data."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _FULL_ERRNOS:
            return True
        if isinstance(current, sqlite3.Error) and getattr(current, "sqlite_errorcode", None) == _SQLITE_FULL:
            return True
        current = current.__cause__ or current.__context__
    return False


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem holding ``path``."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def storage_state(path: Path, min_free_bytes: int) -> str:
    """``"ok"``, or why the data folder cannot take work (for ``/ready`` and refusals)."""
    try:
        free = free_bytes(path)
    except OSError as exc:
        return f"the data folder cannot be read ({exc.strerror or type(exc).__name__})"
    if free < min_free_bytes:
        return f"{free / 2**20:.1f} MB free in the data folder, below the {min_free_bytes / 2**20:.0f} MB required"
    return "ok"


class DiskSpace:
    """The data folder's room for work: ``state()`` is ``"ok"`` while at least
    ``min_free_bytes`` are free (a ``statvfs``: cheap enough for every upload)."""

    def __init__(self, path: Path, min_free_bytes: int):
        self.path, self.min_free_bytes = path, min_free_bytes

    def state(self) -> str:
        return storage_state(self.path, self.min_free_bytes)
