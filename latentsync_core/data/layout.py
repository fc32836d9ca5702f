"""Where every file of a preprocessing run lives.

Stages publish their files atomically (``latentsync_core.storage.atomic``), so a run killed at
any point leaves at most ``*.part-*`` leftovers, which :meth:`Layout.remove_partials`
removes on the next start.
"""

from __future__ import annotations

from pathlib import Path

from latentsync_core.storage.atomic import PART, remove


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
