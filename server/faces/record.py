"""A face scan's record and files: one folder per scan under ``<data_dir>/faces``.

    <id>/scan.json      the record (status, progress, owner, the file's SHA-256, the summary)
    <id>/input_video.*  the upload (absent for a JSON path request: the record names the file)
    <id>/tracks.json    every track with its per-frame boxes and landmarks (``FaceTracks``)
    <id>/thumbs/<n>.jpg one thumbnail per track

The record is the folder's own JSON file, so a scan needs no database and any API node that
shares the data folder can answer for it. Files are replaced atomically (a reader never
sees half a record)."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from latentsync_core.storage.atomic import remove, write_text_atomic
from server.jobs.model import JobStatus

RECORD = "scan.json"
TRACKS = "tracks.json"
THUMBS = "thumbs"
_HASH_CHUNK = 1 << 20


@dataclass
class FaceScan:
    id: str
    status: str  # JobStatus: queued, running, succeeded, failed
    video_path: str
    file_sha256: str
    owner: str | None = None  # SHA-256 of the API key that asked (as a job's owner)
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    progress: float = 0.0
    frames_done: int = 0
    frames_total: int = 0
    error_code: str | None = None
    error_message: str | None = None
    summary: dict[str, Any] | None = None  # FaceTracks.to_json() without per-frame data

    @property
    def final(self) -> bool:
        return self.status in (JobStatus.SUCCEEDED, JobStatus.FAILED)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaceScan:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})


class ScanFolder:
    """A scan's folder; every write and removal of its files goes through here."""

    def __init__(self, path: Path):
        self.path = path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def tracks_file(self) -> Path:
        return self.path / TRACKS

    def thumbnail(self, track_id: int) -> Path:
        return self.path / THUMBS / f"{track_id}.jpg"

    def create(self) -> None:
        self.path.mkdir(parents=True)

    def remove(self) -> None:
        remove(self.path)

    def save(self, scan: FaceScan) -> None:
        write_text_atomic(self.path / RECORD, json.dumps(asdict(scan)))

    def load(self) -> FaceScan | None:
        """The record, or None while there is none (an upload in flight) or it is unreadable."""
        try:
            return FaceScan.from_json(json.loads((self.path / RECORD).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def save_tracks(self, tracks: dict[str, Any]) -> None:
        write_text_atomic(self.tracks_file, json.dumps(tracks))

    def save_thumbnail(self, track_id: int, jpeg: bytes) -> None:
        path = self.thumbnail(track_id)
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(jpeg)


class ScanFolders:
    """``<data_dir>/faces``: one :class:`ScanFolder` per scan, named by its id."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def folder(self, scan_id: str) -> ScanFolder:
        return ScanFolder(self.root / scan_id)

    def all(self) -> list[ScanFolder]:
        return [ScanFolder(p) for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")]


def file_sha256(path: Path) -> str:
    """Blocking (reads the whole file): call it off the event loop."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
