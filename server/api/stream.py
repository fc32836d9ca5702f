"""``GET /jobs/{id}/stream``: the frames finished so far, with the speech, as one fragmented
MP4 that grows until the job ends (the job folder's ``stream.mp4``, written by the library's
``LiveMP4Writer``). A ``<video src>``, ffplay, VLC or ffmpeg play it from the URL while the
job renders; the page plays it through Media Source Extensions (it must send the API key).

A request for a queued or running job waits until the stream has its first window (the
response then starts with the initialization segment and its exact ``codecs`` in the
Content-Type), then follows the file as it grows and ends when the job does. A succeeded
job's stream is its result (the live file is removed when the job ends: one copy on disk),
served as a plain MP4 with Range requests. Polling, not notification: a
job folder may be on storage shared with worker hosts, where file events do not arrive.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from fastapi import Request
from fastapi.responses import FileResponse, Response, StreamingResponse

from latentsync_core.media.live_mp4 import init_segment_size, stream_codecs
from server.api.deps import JobDep, SettingsDep, StoreDep, job_not_found, keyed_router
from server.api.errors import APIError
from server.api.openapi import errors
from server.api.ranges import check_range
from server.jobs.folder import JobFolder
from server.jobs.model import Job, JobStatus
from server.jobs.store import JobStore

router = keyed_router()

CHUNK = 256 * 1024
FILE_POLL_S = 0.1  # how often a follower looks for new bytes
STATUS_POLL_S = 0.5  # how often it asks the store whether the job ended
HEAD_BYTES = 256 * 1024  # the initialization segment is about a kilobyte
_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
_MP4 = {"video/mp4": {"schema": {"type": "string", "format": "binary"}}}


def _unavailable(job: Job, why: str) -> APIError:
    return APIError(409, "STREAM_UNAVAILABLE", f"job {job.id} has no stream: {why}")


def _head(f: BinaryIO) -> tuple[int, str] | None:
    """(bytes of the initialization segment, its Content-Type) once the file holds all of it."""
    head = os.pread(f.fileno(), HEAD_BYTES, 0)
    size = init_segment_size(head)
    if size is None:
        return None
    return size, f'video/mp4; codecs="{stream_codecs(head[:size])}"'


def _open(path: Path) -> BinaryIO | None:
    try:
        return open(path, "rb")  # noqa: SIM115 - handed to the follower, which closes it
    except FileNotFoundError:
        return None


def _replaced(f: BinaryIO, path: Path) -> bool:
    """A new attempt of the job (after a restart) started a new file under the same name."""
    try:
        return os.stat(path).st_ino != os.fstat(f.fileno()).st_ino
    except FileNotFoundError:
        return True


def _finished(job: Job, folder: JobFolder, request: Request) -> Response:
    if job.status != JobStatus.SUCCEEDED:
        raise _unavailable(job, f"it {job.status}")
    if job.result_expired or not folder.result.is_file():
        raise APIError(410, "RESULT_EXPIRED", "the result was removed after its retention time")
    if "range" in request.headers:  # a bad Range is the API's JSON 416, as on /result
        check_range(request.headers["range"], folder.result.stat().st_size)
    return FileResponse(folder.result, media_type="video/mp4", headers=_HEADERS)


async def _follow(f: BinaryIO, path: Path, job_id: str, store: JobStore) -> AsyncIterator[bytes]:
    """The file from its start, then what is appended, until the job ends (or a new attempt
    replaced the file: the client may ask again)."""
    try:
        asked = time.monotonic()
        while True:
            data = f.read(CHUNK)
            if data:
                yield data
                continue
            if time.monotonic() - asked >= STATUS_POLL_S:
                asked = time.monotonic()
                job = store.get(job_id)
                if job is None or JobStatus(job.status).final or _replaced(f, path):
                    while data := f.read(CHUNK):  # what the writer finished before the job ended
                        yield data
                    return
            await asyncio.sleep(FILE_POLL_S)
    finally:
        f.close()


@router.get(
    "/jobs/{job_id}/stream",
    tags=["jobs"],
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Fragmented MP4 (H.264 + AAC) of the frames finished so far, growing until the job "
            "ends; the Content-Type names its codecs. A queued job's request waits for its first window.",
            "content": _MP4,
        },
        **errors(404, 409, 410, 416, 422),
    },
)
async def stream_job(job: JobDep, store: StoreDep, settings: SettingsDep, request: Request) -> Response:
    folder = JobFolder.of(job)
    while True:
        if JobStatus(job.status).final:
            return _finished(job, folder, request)
        if not settings.live_stream:
            raise _unavailable(job, "live streams are off on this service (LATENTSYNC_LIVE_STREAM)")
        f = _open(folder.stream)
        head = _head(f) if f is not None else None
        if f is not None and head is not None:
            return StreamingResponse(_follow(f, folder.stream, job.id, store), media_type=head[1], headers=_HEADERS)
        if f is not None:
            f.close()
        if await request.is_disconnected():
            return Response(status_code=204)
        await asyncio.sleep(FILE_POLL_S)
        fresh = store.get(job.id)
        if fresh is None:
            raise job_not_found(job.id)
        job = fresh
