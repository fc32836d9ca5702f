"""Where every file of a run lives, and how files are published.

A stage writes to a temporary name next to its final path and renames it when complete
(``os.replace`` is atomic on one file system), so a file under its final name is always
whole: a run killed at any point leaves at most ``*.part-*`` leftovers, removed on the next
start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

PART = ".part-"


class Layout:
    """``DATA/clips/`` (kept clips), ``DATA/work/`` (intermediates), the manifest, lists and report."""

    def __init__(self, output_dir: str | Path):
        self.root = Path(output_dir).resolve()
        self.clips = self.root / "clips"
        self.work = self.root / "work"
        self.manifest = self.root / "manifest.sqlite"
        self.report_json = self.root / "report.json"
        self.report_png = self.root / "report.png"
        self.train_list = self.root / "fileslist_train.txt"
        self.val_list = self.root / "fileslist_val.txt"

    def resampled(self, src_id: str) -> Path:
        """Stage 2's folder: ``video.mp4`` (25 fps) and ``audio.wav`` (16 kHz mono)."""
        return self.work / "resampled" / src_id

    def aligned(self, clip: str) -> Path:
        return self.work / "aligned" / f"{clip}.mkv"

    def synced(self, clip: str) -> Path:
        return self.work / "synced" / f"{clip}.mkv"

    def clip(self, clip: str) -> Path:
        return self.clips / f"{clip}.mp4"

    def create(self) -> None:
        for folder in (self.root, self.clips, self.work):
            folder.mkdir(parents=True, exist_ok=True)

    def remove_partials(self) -> int:
        """Delete leftovers of interrupted writes; returns how many."""
        count = 0
        for folder in (self.clips, self.work, self.root):
            if not folder.is_dir():
                continue
            pattern = "*" + PART + "*"
            found = folder.rglob(pattern) if folder != self.root else folder.glob(pattern)
            for path in sorted(found, key=lambda p: len(p.parts), reverse=True):
                remove(path)
                count += 1
        return count


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
