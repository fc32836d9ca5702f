"""The face scans resource: ``POST /faces`` (a video's face tracks, found off the event loop;
202 and poll, like a job), ``GET /faces/{id}`` (status, progress, then the tracks with the
file's SHA-256) and ``GET /faces/{id}/thumbnails/{track}.jpg``. A scan is its caller's, as a
job is (another key's scan does not exist for it)."""

from __future__ import annotations

import re

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse

from server.api.deps import CallerDep, FaceIntakeDep, FaceScannerDep, keyed_router
from server.api.errors import APIError
from server.api.openapi import errors
from server.api.schemas import FaceScanView, FaceTrackView
from server.faces.record import FaceScan
from server.faces.scanner import FaceScanner

router = keyed_router()
_SCAN_ID = re.compile(r"[0-9a-f]{32}")


def scan_view(scan: FaceScan) -> FaceScanView:
    summary = scan.summary or {}
    tracks = [
        FaceTrackView(**track, thumbnail_url=f"/faces/{scan.id}/thumbnails/{track['id']}.jpg")
        for track in summary.get("tracks", [])
    ]
    error = {"code": scan.error_code, "message": scan.error_message or ""} if scan.error_code else None
    return FaceScanView(
        id=scan.id,
        status=scan.status,
        progress=scan.progress,
        frames_done=scan.frames_done,
        frames_total=scan.frames_total,
        created_at=scan.created_at,
        started_at=scan.started_at,
        finished_at=scan.finished_at,
        file_sha256=scan.file_sha256,
        error=error,
        width=summary.get("width"),
        height=summary.get("height"),
        frames=summary.get("frames"),
        detector=summary.get("detector"),
        shots=summary.get("shots", []),
        tracks=tracks,
        seconds=summary.get("seconds"),
    )


def _visible(scanner: FaceScanner, scan_id: str, caller: CallerDep) -> FaceScan:
    scan = scanner.get(scan_id) if _SCAN_ID.fullmatch(scan_id) else None
    if scan is None or not (caller.admin or scan.owner == caller.owner):
        raise APIError(404, "FACES_NOT_FOUND", f"no face scan with id '{scan_id[:64]}'")
    return scan


@router.post(
    "/faces",
    status_code=202,
    tags=["faces"],
    response_model=FaceScanView,
    responses=errors(400, 403, 408, 413, 415, 422, 429, 503, 507),  # the request body: server/api/openapi.py
)
async def create_scan(request: Request, intake: FaceIntakeDep, caller: CallerDep) -> JSONResponse:
    scan = await intake.receive(request, caller.owner)
    return JSONResponse(scan_view(scan).model_dump(), status_code=202, headers={"Location": f"/faces/{scan.id}"})


@router.get("/faces/{scan_id}", response_model=FaceScanView, tags=["faces"], responses=errors(404, 422))
async def get_scan(scan_id: str, scanner: FaceScannerDep, caller: CallerDep) -> FaceScanView:
    scan = await run_in_threadpool(_visible, scanner, scan_id, caller)  # may read its record file
    return scan_view(scan)


_JPEG = {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}


@router.get(
    "/faces/{scan_id}/thumbnails/{track_id}.jpg",
    tags=["faces"],
    response_class=FileResponse,
    responses={200: {"description": "The track's thumbnail", "content": _JPEG}, **errors(404, 422)},
)
async def get_thumbnail(scan_id: str, track_id: int, scanner: FaceScannerDep, caller: CallerDep) -> FileResponse:
    scan = await run_in_threadpool(_visible, scanner, scan_id, caller)
    path = scanner.folders.folder(scan.id).thumbnail(track_id)
    if track_id < 0 or not path.is_file():
        raise APIError(404, "THUMBNAIL_NOT_FOUND", f"scan {scan.id} has no thumbnail for track {track_id}")
    return FileResponse(path, media_type="image/jpeg")
