"""Taking a face scan in (``POST /faces``): the same upload rules and limits as ``/lipsync``
(multipart ``video``, streamed into the scan's folder, or JSON ``{"video_path"}`` inside
``LATENTSYNC_INPUT_DIRS``), the video's probe and the file's SHA-256 off the event loop,
then the scanner is told. A refused upload leaves nothing behind."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from latentsync_core.common.errors import MediaError
from latentsync_core.media.input_file import InputFile
from latentsync_core.media.limits import MediaLimits
from latentsync_core.media.probe import probe_video
from server.api.errors import APIError, insufficient_storage
from server.api.inputs import MAX_JSON_BYTES, InputRoots, _first_error
from server.api.schemas import FacesPathRequest
from server.api.uploads import receive_multipart
from server.faces.record import FaceScan, ScanFolders, file_sha256
from server.faces.scanner import FaceScanner
from server.jobs.disk import DiskSpace, is_disk_full
from server.jobs.model import JobStatus
from server.settings import Settings


class FaceIntake:
    def __init__(self, settings: Settings, scanner: FaceScanner, folders: ScanFolders, disk: DiskSpace):
        self.settings, self.scanner, self.folders, self.disk = settings, scanner, folders, disk
        self.roots = InputRoots(settings.input_dirs)
        self.closed = False  # set at shutdown: new scans are refused (503)
        self._reserved = 0  # slots of uploads still being received (event loop only: no lock)

    async def receive(self, request: Request, owner: str | None) -> FaceScan:
        if self.closed:
            raise APIError(503, "SHUTTING_DOWN", "the service is shutting down", {"Retry-After": "30"})
        storage = self.disk.state()
        if storage != "ok":
            raise insufficient_storage(storage)
        waiting = self.scanner.waiting + self._reserved
        if waiting >= self.settings.max_queue:
            message = f"{waiting} face scans are waiting; try again later"
            raise APIError(429, "QUEUE_FULL", message, {"Retry-After": "30"})
        self._reserved += 1
        folder = self.folders.folder(uuid.uuid4().hex)
        try:
            folder.create()
            video = await self._read_video(request, folder.path)
            await run_in_threadpool(check_video, video, self.settings.media_limits())
            scan = FaceScan(
                id=folder.name,
                status=JobStatus.QUEUED,
                video_path=str(video),
                file_sha256=await run_in_threadpool(file_sha256, video),
                owner=owner,
            )
            folder.save(scan)
        except BaseException as exc:
            folder.remove()
            if is_disk_full(exc):
                raise insufficient_storage("the data folder is full") from exc
            raise
        finally:
            self._reserved -= 1
        self.scanner.submit(scan)
        return scan

    async def _read_video(self, request: Request, folder: Path) -> Path:
        if request.headers.get("content-type", "").startswith("application/json"):
            raw = await request.body()
            if len(raw) > MAX_JSON_BYTES:
                raise APIError(413, "PAYLOAD_TOO_LARGE", "JSON body too large")
            try:
                req = FacesPathRequest.model_validate(json.loads(raw or b"{}"))
            except RecursionError as exc:
                raise APIError(422, "INVALID_PARAMETER", "JSON body nested too deeply") from exc
            except (ValueError, ValidationError) as exc:
                raise APIError(422, "INVALID_PARAMETER", _first_error(exc)) from exc
            return self.roots.allowed(req.video_path)
        upload = await receive_multipart(request, folder, self.settings.max_upload_mb * 1024 * 1024)
        if "audio" in upload.files:
            raise APIError(400, "UNEXPECTED_FILE", "a face scan takes only a 'video' file")
        if upload.fields:
            name = sorted(upload.fields)[0][:64]
            raise APIError(422, "INVALID_PARAMETER", f"{name}: unexpected field (a face scan takes only 'video')")
        if "video" not in upload.files:
            raise APIError(400, "MISSING_FILE", "the 'video' file is missing")
        if upload.files["video"].stat().st_size == 0:
            raise APIError(400, "EMPTY_FILE", "the 'video' file is empty")
        return upload.files["video"]


def check_video(video: Path, limits: MediaLimits) -> None:
    """Blocking (ffprobe, time- and memory-capped): a video stream within the limits."""
    try:
        with InputFile(video, limits.follow_symlinks) as v:
            info = probe_video(v.path, limits)
        limits.check_video(info)  # pixels and duration
    except MediaError as exc:
        raise APIError(400, exc.code, exc.message) from exc
