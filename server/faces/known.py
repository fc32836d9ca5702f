"""The face tracks the service already knows for a file, by the file's SHA-256: what a
finished scan found. ``/lipsync`` checks ``face=track:<id>`` (and a point's face) against
them before it queues the job; the same bytes and the same detector give the same tracks
and ids, which the job computes again when it runs.

An index file per hash (``<faces>/.by-sha256/<hash>``) names the latest finished scan of
that file; a scan removed since (retention) simply leaves the file unknown."""

from __future__ import annotations

import json
import re

from latentsync_core.storage.atomic import write_text_atomic
from latentsync_core.vision.face_tracks import FaceTracks
from server.faces.record import ScanFolders
from server.jobs.model import JobStatus

INDEX = ".by-sha256"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_SCAN_ID = re.compile(r"[0-9a-f]{32}")  # uuid4().hex


class KnownTracks:
    def __init__(self, folders: ScanFolders):
        self.folders = folders
        self.index = folders.root / INDEX
        self.index.mkdir(exist_ok=True)

    def remember(self, sha256: str, scan_id: str) -> None:
        write_text_atomic(self.index / sha256, scan_id)

    def forget(self, sha256: str, scan_id: str) -> None:
        """The index entry of ``sha256``, if it still names ``scan_id`` (a scan being removed)."""
        entry = self.index / sha256
        try:
            if entry.read_text() == scan_id:
                entry.unlink()
        except OSError:
            pass

    def get(self, sha256: str) -> FaceTracks | None:
        """Blocking (reads a JSON file of every frame's boxes). None: no finished scan of it."""
        if not _SHA256.fullmatch(sha256):
            return None
        try:
            scan_id = (self.index / sha256).read_text().strip()
        except OSError:
            return None
        if not _SCAN_ID.fullmatch(scan_id):
            return None
        folder = self.folders.folder(scan_id)
        scan = folder.load()
        if scan is None or scan.status != JobStatus.SUCCEEDED or scan.file_sha256 != sha256:
            return None
        try:
            return FaceTracks.from_json(json.loads(folder.tracks_file.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            return None
