"""HTTP endpoints. Knows jobs and files; the pipeline is only called by the worker, and
blocking work (probing media) runs off the event loop so polls stay fast."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
import uuid
from pathlib import Path

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse
from prometheus_client import generate_latest
from pydantic import ValidationError

from latentsync_core.common.errors import MediaError
from latentsync_core.media.limits import MediaLimits
from latentsync_core.media.probe import check_inputs
from latentsync_core.storage.job_disk import DiskEstimate
from server.deps import CallerDep, JobDep, ServiceDep, require_api_key
from server.errors import APIError
from server.job_store import Job
from server.lifecycle import JobStatus
from server.openapi import errors
from server.schemas import JobList, JobParams, JobView, PathRequest
from server.service import Service
from server.storage import insufficient_storage, is_disk_full
from server.uploads import receive_multipart
from server.webhooks import WebhookRefused

public = APIRouter()  # no key needed
router = APIRouter(dependencies=[Depends(require_api_key)], responses=errors(401))


# ---- health -----------------------------------------------------------------------------
@public.get("/health", tags=["health"])
async def health() -> dict:
    return {"status": "ok"}


_READY = {"application/json": {"schema": {"type": "object", "additionalProperties": True}}}


@router.get(
    "/ready",
    tags=["health"],
    responses={
        200: {"content": _READY},
        503: {"description": "Not ready (loading, load error, damaged database, data folder full)", "content": _READY},
    },
)
async def ready(svc: ServiceDep) -> JSONResponse:
    database = await run_in_threadpool(svc.database_state)
    storage = await run_in_threadpool(svc.storage_state)
    try:
        queue_length = svc.store.count(JobStatus.QUEUED) if database == "ok" else None
    except sqlite3.DatabaseError:
        queue_length = None
    body = {
        "state": svc.state,
        "database": database,
        "storage": storage,
        "weights": svc.settings.weights,
        "queue_length": queue_length,
        "running": svc.worker.running_id is not None,
        "fast_path": svc.fast_path,
    }
    if svc.pipeline is not None:
        body.update(svc.pipeline.describe())
    else:
        body.update(device=None, dtype=None)
    if svc.state == "error":
        body["error"] = svc.load_error
    healthy = svc.state == "ready" and database == "ok" and storage == "ok"
    return JSONResponse(body, status_code=200 if healthy else 503)


@router.get("/metrics", tags=["health"], response_class=PlainTextResponse)
async def metrics(svc: ServiceDep) -> PlainTextResponse:
    counts = svc.store.counts_by_status()
    for status in JobStatus:
        svc.metrics.jobs_by_status.labels(status.value).set(counts.get(status.value, 0))
    svc.metrics.queue_length.set(counts.get(JobStatus.QUEUED, 0))
    svc.metrics.ready.set(1 if svc.state == "ready" else 0)
    if svc.pipeline is not None:
        for kind, value in svc.pipeline.memory_stats().items():
            svc.metrics.gpu_memory.labels(kind).set(value)
    return PlainTextResponse(generate_latest(svc.metrics.registry).decode(), media_type="text/plain; version=0.0.4")


# ---- documentation (behind the key like the API it describes) -------------------------
@router.get("/openapi.json", include_in_schema=False)
async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs", include_in_schema=False)
async def docs(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title=request.app.title)


# ---- jobs -------------------------------------------------------------------------------
@router.post(
    "/lipsync",
    status_code=202,
    tags=["jobs"],
    response_model=JobView,
    responses=errors(400, 403, 408, 413, 415, 422, 429, 503, 507),  # the request body: server/openapi.py
)
async def create_job(request: Request, svc: ServiceDep, caller: CallerDep) -> JSONResponse:
    if svc.stopping:
        raise APIError(503, "SHUTTING_DOWN", "the service is shutting down", {"Retry-After": "30"})
    with svc.admission():  # a queue slot, reserved before the body is read
        job_id = uuid.uuid4().hex
        work = svc.jobs_dir / job_id
        try:
            work.mkdir(parents=True)
            video, audio, params = await _read_inputs(request, svc, work)
            s = svc.settings
            if params.webhook_url:
                await run_in_threadpool(_check_webhook, svc, params.webhook_url)
            disk = await run_in_threadpool(_check_media, video, audio, s.media_limits())
            resolved = svc.resolve_params(params)
            job = Job(id=job_id, status=JobStatus.QUEUED, params=resolved, video_path=str(video),
                      audio_path=str(audio), work_dir=str(work), webhook_url=params.webhook_url,
                      owner=caller.owner, disk_estimate_bytes=disk.total)  # fmt: skip
            svc.store.insert(job)
        except BaseException as exc:
            shutil.rmtree(work, ignore_errors=True)  # frees what a refused upload took
            if is_disk_full(exc):  # the upload's files or the job record did not fit
                raise insufficient_storage("the data folder is full") from exc
            raise
    svc.worker.wake()
    return JSONResponse(job_view(svc, job).model_dump(), status_code=202, headers={"Location": f"/jobs/{job_id}"})


async def _read_inputs(request: Request, svc: Service, work: Path) -> tuple[Path, Path, JobParams]:
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("application/json"):
        raw = await request.body()
        if len(raw) > 64 * 1024:
            raise APIError(413, "PAYLOAD_TOO_LARGE", "JSON body too large")
        try:
            req = PathRequest.model_validate(json.loads(raw or b"{}"))
        except RecursionError as exc:  # JSON nested thousands deep
            raise APIError(422, "INVALID_PARAMETER", "JSON body nested too deeply") from exc
        except (ValueError, ValidationError) as exc:
            raise APIError(422, "INVALID_PARAMETER", _first_error(exc)) from exc
        return svc.allowed_input(req.video_path), svc.allowed_input(req.audio_path), req
    upload = await receive_multipart(request, work, svc.settings.max_upload_mb * 1024 * 1024)
    for name in ("video", "audio"):
        if name not in upload.files:
            raise APIError(400, "MISSING_FILE", f"the '{name}' file is missing")
        if upload.files[name].stat().st_size == 0:
            raise APIError(400, "EMPTY_FILE", f"the '{name}' file is empty")
    try:
        params = JobParams.model_validate({k: v for k, v in upload.fields.items() if v != ""})
    except ValidationError as exc:
        raise APIError(422, "INVALID_PARAMETER", _first_error(exc)) from exc
    return upload.files["video"], upload.files["audio"], params


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError) and exc.errors():
        e = exc.errors()[0]
        return f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
    return str(exc)


def _check_webhook(svc: Service, url: str) -> None:
    """Blocking (DNS). The same check runs again when the webhook is sent."""
    try:
        svc.webhook_policy.resolve(url)
    except WebhookRefused as exc:
        raise APIError(400, "WEBHOOK_NOT_ALLOWED", f"webhook_url not allowed: {exc}") from exc


# Media errors that are not the input's fault but the service's limit on its size.
_MEDIA_STATUS = {"JOB_TOO_LARGE_FOR_DISK": 413}


def _check_media(video: Path, audio: Path, limits: MediaLimits) -> DiskEstimate:
    """Blocking (ffprobe children, time- and memory-capped): runs on a worker thread.
    The job's worst-case disk need, for its record."""
    try:
        vinfo, ainfo = check_inputs(video, audio, limits)
    except MediaError as exc:
        raise APIError(_MEDIA_STATUS.get(exc.code, 400), exc.code, exc.message) from exc
    return limits.check_disk(vinfo, ainfo)


@router.get("/jobs", response_model=JobList, tags=["jobs"], responses=errors(400, 422))
async def list_jobs(
    svc: ServiceDep,
    caller: CallerDep,
    status: str | None = Query(None, description="queued, running, succeeded, failed or canceled"),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=2**31),
) -> JobList:
    if status is not None and status not in set(JobStatus):
        raise APIError(400, "INVALID_PARAMETER", f"status must be one of {', '.join(s.value for s in JobStatus)}")
    jobs, total = svc.store.list(status, limit, offset, owner=caller.only_owner)  # the callers' own jobs
    return JobList(jobs=[job_view(svc, j) for j in jobs], total=total, limit=limit, offset=offset)


@router.get("/jobs/{job_id}", response_model=JobView, tags=["jobs"], responses=errors(404, 422))
async def get_job(svc: ServiceDep, job: JobDep) -> JobView:
    return job_view(svc, job)


_MP4 = {"video/mp4": {"schema": {"type": "string", "format": "binary"}}}


@router.get(
    "/jobs/{job_id}/result",
    tags=["jobs"],
    response_class=FileResponse,
    responses={
        200: {"description": "The lip-synced MP4 (Range requests: 206)", "content": _MP4},
        **errors(404, 409, 410, 422),
    },
)
async def get_result(job: JobDep) -> FileResponse:
    if job.status != JobStatus.SUCCEEDED:
        raise APIError(409, "NOT_READY", f"job is {job.status}; the result exists once it has succeeded")
    if job.result_expired or not job.result_path or not Path(job.result_path).is_file():
        raise APIError(410, "RESULT_EXPIRED", "the result was removed after its retention time")
    return FileResponse(job.result_path, media_type="video/mp4", filename=f"lipsync-{job.id}.mp4")


@router.delete(
    "/jobs/{job_id}",
    tags=["jobs"],
    response_model=JobView,
    responses={
        202: {"model": JobView, "description": "A running job is being stopped (status 'canceling')"},
        204: {"description": "A finished job and its files were removed"},
        **errors(404, 422),
    },
)
async def delete_job(svc: ServiceDep, job: JobDep) -> Response:
    if job.status == JobStatus.QUEUED:
        return JSONResponse(job_view(svc, svc.lifecycle.cancel(job)).model_dump())
    if job.status == JobStatus.RUNNING:
        svc.worker.request_cancel(job.id)
        return JSONResponse(job_view(svc, job).model_dump() | {"status": "canceling"}, status_code=202)
    shutil.rmtree(job.work_dir, ignore_errors=True)  # a finished job: remove it with its files
    svc.store.delete(job.id)
    return Response(status_code=204)


def job_view(svc: Service, job: Job) -> JobView:
    live = svc.board.get(job.id) if job.status == JobStatus.RUNNING else None
    snap = {**{"stage": job.stage, "progress": job.progress, "frames_done": job.frames_done,
               "frames_total": job.frames_total}, **(live or {})}  # fmt: skip
    position = None
    eta = None
    if job.status == JobStatus.QUEUED:
        queued = svc.store.queued_ids()
        position = queued.index(job.id) + 1 if job.id in queued else None
        eta = svc.estimate_wait(position or 0) or None
    elif job.status == JobStatus.RUNNING and job.started_at and snap["progress"] > 0.02:
        elapsed = time.time() - job.started_at
        eta = round(elapsed * (1 - snap["progress"]) / snap["progress"], 1)
    error = {"code": job.error_code, "message": job.error_message or ""} if job.error_code else None
    result_url = f"/jobs/{job.id}/result" if job.status == JobStatus.SUCCEEDED and not job.result_expired else None
    return JobView(
        id=job.id,
        status=job.status,
        stage=snap["stage"],
        progress=snap["progress"],
        frames_done=snap.get("frames_done", 0),
        frames_total=snap.get("frames_total", 0),
        queue_position=position,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        eta_seconds=eta,
        attempts=job.attempts,
        params=job.params,
        error=error,
        result_url=result_url,
        result=job.result_info,
        worker=job.worker,
        disk_estimate_bytes=job.disk_estimate_bytes,
    )
