"""Running face scans: every face of a video tracked (``latentsync_core.vision.face_tracks``),
a thumbnail per track, on a small thread pool of their own.

Why not the GPU job queue: a scan needs no GPU model (the face detector runs on the CPU, as
a job's detection stage does), and a person picking a face should not wait behind minutes
of queued lip-sync jobs. Scans are bounded instead: ``face_scan_workers`` at a time (one by
default, each with the job's detection threads), the rest wait in order, and the API refuses
new ones past ``max_queue`` waiting (429), like jobs. Progress is kept in memory for polls
and written to the scan's record at most twice a second."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from latentsync_core.common.errors import CodedError
from latentsync_core.media.constants import FPS
from latentsync_core.media.limits import MediaLimits
from server.faces.known import KnownTracks
from server.faces.record import FaceScan, ScanFolders
from server.jobs.model import JobStatus

if TYPE_CHECKING:
    from latentsync_core.vision.face_detection import FaceDetector

log = logging.getLogger("latentsync.server")
PERSIST_EVERY_S = 0.5
ORPHAN_AGE_S = 3600.0  # a folder without a record this old is no upload in flight


class ScanStopped(Exception):
    """The service is stopping: the scan stays queued for the next start."""


class FaceScanner:
    def __init__(
        self,
        folders: ScanFolders,
        known: KnownTracks,
        make_detector: Callable[[], FaceDetector],
        limits: MediaLimits,
        detect_workers: int | None = None,
        concurrency: int = 1,
    ):
        self.folders, self.known, self.limits = folders, known, limits
        self.detect_workers = detect_workers
        self._make_detector = make_detector
        self._local = threading.local()  # one detector per scan thread
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="faces")
        self._live: dict[str, FaceScan] = {}  # this process's unfinished scans, for polls and the queue
        self._lock = threading.Lock()
        self.stopping = False

    # ---- the API's face -------------------------------------------------------------------
    @property
    def waiting(self) -> int:
        """Scans of this process not yet started."""
        with self._lock:
            return sum(1 for s in self._live.values() if s.status == JobStatus.QUEUED)

    def submit(self, scan: FaceScan) -> None:
        """``scan`` has its folder and record (queued): run it when a scan thread is free."""
        with self._lock:
            self._live[scan.id] = scan
        self._executor.submit(self._run_logged, scan.id)

    def get(self, scan_id: str) -> FaceScan | None:
        with self._lock:
            live = self._live.get(scan_id)
        return replace(live) if live is not None else self.folders.folder(scan_id).load()

    def stop(self) -> None:
        """Stop taking scans; a running one stops at its next frames and stays queued."""
        self.stopping = True
        self._executor.shutdown(wait=False, cancel_futures=True)

    # ---- start-up and retention (blocking: on a thread) ---------------------------------------
    def recover(self) -> int:
        """Scans a stop or a crash left queued or running run again; folders without a record
        (an upload cut off by a crash) go once they are old. How many scans were queued."""
        again = 0
        for folder in self.folders.all():
            scan = folder.load()
            if scan is None:
                if time.time() - folder.path.stat().st_mtime > ORPHAN_AGE_S:
                    folder.remove()
                continue
            if not scan.final:
                scan = replace(scan, status=JobStatus.QUEUED, progress=0.0, frames_done=0, started_at=None)
                folder.save(scan)
                self.submit(scan)
                again += 1
        return again

    def expire(self, ttl_s: float) -> int:
        """Finished scans older than ``ttl_s`` go with their files; how many."""
        cutoff, gone = time.time() - ttl_s, 0
        for folder in self.folders.all():
            scan = folder.load()
            if scan is not None and scan.final and (scan.finished_at or 0) < cutoff:
                self.known.forget(scan.file_sha256, scan.id)
                folder.remove()
                gone += 1
        return gone

    async def loop(self, ttl_s: float, interval_s: float) -> None:
        while True:
            try:
                await asyncio.to_thread(self.expire, ttl_s)
            except Exception:  # never let retention kill the service
                log.exception("face scan clean-up failed")
            await asyncio.sleep(interval_s)

    # ---- a scan (on a scan thread) ------------------------------------------------------------
    def _detector(self) -> FaceDetector:
        detector = getattr(self._local, "detector", None)
        if detector is None:
            detector = self._local.detector = self._make_detector()
        return detector

    def _run_logged(self, scan_id: str) -> None:
        try:
            self._run(scan_id)
        except Exception:  # a bug: the scan says so, the thread lives on
            log.exception("face scan %s failed with an internal error", scan_id)
            self._finish(scan_id, JobStatus.FAILED, error=("INTERNAL", "internal error; see the service log"))

    def _run(self, scan_id: str) -> None:
        from latentsync_core.media.probe import probe_video
        from latentsync_core.vision.face_sheet import add_thumbnails
        from latentsync_core.vision.face_tracks import track_faces

        if self.stopping:
            return
        folder = self.folders.folder(scan_id)
        scan = self._update(scan_id, status=JobStatus.RUNNING, started_at=time.time())
        last_save = [0.0]

        def progress(done: int, total: int) -> None:
            if self.stopping:
                raise ScanStopped
            live = self._update(scan_id, frames_done=done, frames_total=total, progress=round(0.95 * done / total, 4))
            if time.monotonic() - last_save[0] >= PERSIST_EVERY_S:
                last_save[0] = time.monotonic()
                folder.save(live)

        started = time.perf_counter()
        try:
            video = Path(scan.video_path)
            info = probe_video(video, self.limits)
            tracks = track_faces(
                video,
                self._detector(),
                info,
                self.detect_workers,
                max_frames=self.limits.max_video_frames(FPS),
                progress=progress,
            )
            add_thumbnails(video, tracks)
        except ScanStopped:
            folder.save(self._update(scan_id, status=JobStatus.QUEUED, started_at=None, progress=0.0, frames_done=0))
            with self._lock:
                self._live.pop(scan_id, None)
            return
        except CodedError as exc:  # what the video caused: the caller's to see
            self._finish(scan_id, JobStatus.FAILED, error=(exc.code, exc.message))
            return
        for track in tracks.tracks:
            if track.thumbnail is not None:
                folder.save_thumbnail(track.id, track.thumbnail)
        folder.save_tracks(tracks.to_json(include_frames=True))
        summary = tracks.to_json() | {"seconds": round(time.perf_counter() - started, 3)}
        self.known.remember(scan.file_sha256, scan_id)
        self._finish(scan_id, JobStatus.SUCCEEDED, summary=summary)

    def _update(self, scan_id: str, **fields: object) -> FaceScan:
        with self._lock:
            scan = self._live[scan_id] = replace(self._live[scan_id], **fields)  # type: ignore[arg-type]
            return scan

    def _finish(
        self, scan_id: str, status: JobStatus, error: tuple[str, str] | None = None, summary: dict | None = None
    ) -> None:
        with self._lock:
            scan = self._live.get(scan_id)
        if scan is None:
            return
        code, message = error or (None, None)
        done = replace(
            scan,
            status=status,
            finished_at=time.time(),
            progress=1.0 if status == JobStatus.SUCCEEDED else scan.progress,
            error_code=code,
            error_message=message,
            summary=summary,
        )
        self.folders.folder(scan_id).save(done)  # saved before it leaves the live scans: polls see one or the other
        with self._lock:
            self._live.pop(scan_id, None)
