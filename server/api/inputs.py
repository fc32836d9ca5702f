"""A new job's inputs, as a request brings them: two uploaded files (multipart, streamed into
the job's folder) or two paths inside an allowed folder (JSON), the job parameters, and the
checks they must pass before the job is queued."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request
from pydantic import ValidationError

from latentsync_core.common.errors import MediaError
from latentsync_core.inference.length_modes import job_extent
from latentsync_core.media.constants import FPS
from latentsync_core.media.info import MediaInfo
from latentsync_core.media.limits import MediaLimits
from latentsync_core.media.probe import check_inputs
from latentsync_core.storage.job_disk import DiskEstimate
from server.api.errors import APIError
from server.api.schemas import JobParams, PathRequest
from server.api.uploads import receive_multipart
from server.jobs.idempotency import request_fingerprint
from server.jobs.webhooks import WebhookPolicy, WebhookRefused

MAX_JSON_BYTES = 64 * 1024
# Media errors that are not the input's fault but the service's limit on its size.
_MEDIA_STATUS = {"JOB_TOO_LARGE_FOR_DISK": 413}


class InputRoots:
    """The folders JSON requests may name files in (``LATENTSYNC_INPUT_DIRS``)."""

    def __init__(self, folders: list[Path]):
        self.roots = [p.resolve() for p in folders]

    def allowed(self, raw: str) -> Path:
        """A path from a JSON request, accepted only inside a configured input folder."""
        if not self.roots:
            raise APIError(403, "PATH_INPUT_DISABLED", "path inputs are disabled (set LATENTSYNC_INPUT_DIRS)")
        if "\x00" in raw:
            raise APIError(400, "INVALID_PATH", "invalid path")
        try:
            path = Path(raw).resolve()  # resolves '..' and symlinks before the check
            if not any(path.is_relative_to(root) for root in self.roots):
                raise APIError(403, "PATH_NOT_ALLOWED", "the path is outside the allowed input folders")
            if not path.exists():
                raise APIError(400, "FILE_NOT_FOUND", f"no such file: {Path(raw).name[:255]}")
            if not path.is_file():  # a folder, a FIFO, a device: nothing a job can read as a file
                raise APIError(400, "INPUT_NOT_REGULAR", f"not a regular file: {Path(raw).name[:255]}")
        except OSError as exc:  # a name too long, a symlink loop, ...
            raise APIError(400, "INVALID_PATH", f"invalid path ({exc.strerror or type(exc).__name__})") from exc
        return path


@dataclass
class ReceivedInputs:
    video: Path
    audio: Path
    params: JobParams
    fingerprint: str | None = None  # when asked for: what makes a retry "the same request"


async def read_inputs(
    request: Request, roots: InputRoots, folder: Path, max_upload_bytes: int, fingerprint: bool = False
) -> ReceivedInputs:
    """The video, the audio and the parameters of a POST /lipsync; uploads go into ``folder``.
    ``fingerprint``: also the request's fingerprint (``server.jobs.idempotency``)."""
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("application/json"):
        raw = await request.body()
        if len(raw) > MAX_JSON_BYTES:
            raise APIError(413, "PAYLOAD_TOO_LARGE", "JSON body too large")
        try:
            req = PathRequest.model_validate(json.loads(raw or b"{}"))
        except RecursionError as exc:  # JSON nested thousands deep
            raise APIError(422, "INVALID_PARAMETER", "JSON body nested too deeply") from exc
        except (ValueError, ValidationError) as exc:
            raise APIError(422, "INVALID_PARAMETER", _first_error(exc)) from exc
        video, audio = roots.allowed(req.video_path), roots.allowed(req.audio_path)
        digest = request_fingerprint({}, req.model_dump(exclude_none=True)) if fingerprint else None
        return ReceivedInputs(video, audio, req, digest)
    upload = await receive_multipart(request, folder, max_upload_bytes, hash_files=fingerprint)
    for name in ("video", "audio"):
        if name not in upload.files:
            raise APIError(400, "MISSING_FILE", f"the '{name}' file is missing")
        if upload.files[name].stat().st_size == 0:
            raise APIError(400, "EMPTY_FILE", f"the '{name}' file is empty")
    fields = {k: v for k, v in upload.fields.items() if v != ""}
    try:
        params = JobParams.model_validate(fields)
    except ValidationError as exc:
        raise APIError(422, "INVALID_PARAMETER", _first_error(exc)) from exc
    digest = request_fingerprint(upload.digests, fields) if fingerprint else None
    return ReceivedInputs(upload.files["video"], upload.files["audio"], params, digest)


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError) and exc.errors():
        e = exc.errors()[0]
        return f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
    return str(exc)


def check_webhook(policy: WebhookPolicy, url: str) -> None:
    """Blocking (DNS). The same check runs again when the webhook is sent."""
    try:
        policy.resolve(url)
    except WebhookRefused as exc:
        raise APIError(400, "WEBHOOK_NOT_ALLOWED", f"webhook_url not allowed: {exc}") from exc


def check_media(
    video: Path, audio: Path, limits: MediaLimits, sync_mode: str, live_stream: bool
) -> tuple[DiskEstimate, MediaInfo]:
    """Blocking (ffprobe children, time- and memory-capped): runs on a worker thread.
    The job's worst-case disk need in its ``sync_mode``, for its record, and the video's probe."""
    try:
        vinfo, ainfo = check_inputs(video, audio, limits)
        extent = job_extent(sync_mode, math.ceil(ainfo.duration * FPS), round(vinfo.duration * FPS))
        return limits.check_disk(vinfo, ainfo, extent, live_stream), vinfo
    except MediaError as exc:
        raise APIError(_MEDIA_STATUS.get(exc.code, 400), exc.code, exc.message) from exc
