"""A real full disk for tests: a command runs with a small tmpfs of its own mounted on a folder.

    unshare --mount [--user --map-root-user] python -m tests.small_disk FOLDER BYTES -- COMMAND...

The tmpfs lives in a private mount namespace (``unshare``), so nothing else on the machine sees
it and it disappears with the command; without root, a user namespace makes the mount
unprivileged (where the kernel allows user namespaces). Writes past ``BYTES`` fail with ENOSPC
exactly as on a full disk, and a memory map over a sparse file gets SIGBUS as it would there.
The test process reaches the files through ``/proc/<pid>/root`` (the command's view).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import sys
from pathlib import Path


def command(folder: Path, size_bytes: int, argv: list[str]) -> list[str]:
    """The argument list that runs ``argv`` with a ``size_bytes`` tmpfs on ``folder``."""
    unshare = shutil.which("unshare")
    if unshare is None:
        raise RuntimeError("unshare (util-linux) is needed for the full-disk tests")
    userns = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    return [unshare, "--mount", *userns, sys.executable, "-m", "tests.small_disk", str(folder), str(size_bytes),
            "--", *argv]  # fmt: skip


def fill(folder: Path, leave_bytes: int, name: str = "filler") -> Path:
    """Write a file into ``folder`` until only about ``leave_bytes`` are free on its disk."""
    st = os.statvfs(folder)
    size = max(st.f_bavail * st.f_frsize - leave_bytes, 0)
    path = folder / name
    with open(path, "wb") as f:
        chunk = bytes(1 << 20)
        while size > 0:
            size -= f.write(chunk[: min(size, len(chunk))])
    return path


def _mount_tmpfs(folder: str, size_bytes: int) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    options = f"size={size_bytes},mode=0700".encode()
    if libc.mount(b"tmpfs", folder.encode(), b"tmpfs", 0, options) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount tmpfs on {folder}: {os.strerror(err)}")


def main(argv: list[str]) -> None:
    folder, size, sep, *cmd = argv
    if sep != "--" or not cmd:
        raise SystemExit("usage: python -m tests.small_disk FOLDER BYTES -- COMMAND...")
    Path(folder).mkdir(parents=True, exist_ok=True)
    _mount_tmpfs(folder, int(size))
    os.execvp(cmd[0], cmd)  # the same process: killing it ends the namespace and the tmpfs


if __name__ == "__main__":
    main(sys.argv[1:])
