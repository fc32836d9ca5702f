"""Publishing files and folders atomically: write under a temporary name next to the final
path, then rename (``os.replace`` is atomic on one file system). A file under its final name
is therefore always whole; a process killed at any point leaves at most ``*.part-*``
leftovers (``PART``), which their owner removes on its next start.

Used by preprocessing (intermediates, clips, lists, report) and training (checkpoints,
caches, exports).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

PART = ".part-"


def part_path(final: Path) -> Path:
    """A unique temporary sibling of ``final`` keeping its extension (ffmpeg picks the
    container from it)."""
    tag = f"{PART}{os.getpid()}-{uuid.uuid4().hex[:6]}"
    return final.with_name(final.stem + tag + final.suffix)


def publish(tmp: Path, final: Path) -> None:
    """Move a finished file or folder to its final name, replacing an older copy."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if tmp.is_dir() and final.exists():
        remove(final)  # os.replace cannot replace a non-empty folder
    os.replace(tmp, final)


@contextlib.contextmanager
def writing(final: Path) -> Iterator[Path]:
    """``with writing(path) as tmp:`` write ``tmp``; it becomes ``path`` only if the block succeeds."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = part_path(final)
    try:
        yield tmp
    except BaseException:
        remove(tmp)
        raise
    publish(tmp, final)


def write_text_atomic(final: Path, text: str) -> None:
    with writing(final) as tmp:
        tmp.write_text(text)


def remove(path: Path) -> None:
    """Delete a file or folder if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
