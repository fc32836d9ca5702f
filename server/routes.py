"""HTTP endpoints. Knows jobs and files; the pipeline is only called by the worker."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from prometheus_client import generate_latest
from pydantic import ValidationError

from latentsync_core.media import MediaError
from latentsync_core.media.probe import probe_audio, probe_video
from server.errors import APIError
from server.job_store import CANCELED, FINAL, QUEUED, RUNNING, STATUSES, SUCCEEDED, Job
from server.schemas import JobList, JobParams, JobView, PathRequest
from server.uploads import receive_multipart

router = APIRouter()


def _state(request: Request) -> Any:
    return request.app.state.svc


# ---- health -----------------------------------------------------------------------------
@router.get("/health", tags=["health"])
async def health() -> dict:
    return {"status": "ok"}


@router.get("/ready", tags=["health"])
async def ready(request: Request) -> JSONResponse:
    svc = _state(request)
    body = {
        "state": svc.state,
        "device": str(svc.models.device) if svc.models else None,
        "dtype": str(svc.models.dtype).replace("torch.", "") if svc.models else None,
        "weights": svc.settings.weights,
        "queue_length": svc.store.count(QUEUED),
        "running": svc.worker.running_id is not None,
        "fast_path": svc.fast_path,
    }
    if svc.models is not None:
        body["load_seconds"] = round(svc.models.load_seconds, 2)
        if svc.models.is_demo:
            body["notice"] = "demo weights: random model, no real lip-sync"
    if svc.state == "error":
        body["error"] = svc.load_error
    return JSONResponse(body, status_code=200 if svc.state == "ready" else 503)


@router.get("/metrics", tags=["health"])
async def metrics(request: Request) -> PlainTextResponse:
    svc = _state(request)
    counts = svc.store.counts_by_status()
    for status in STATUSES:
        svc.metrics.jobs_by_status.labels(status).set(counts.get(status, 0))
    svc.metrics.queue_length.set(counts.get(QUEUED, 0))
    svc.metrics.ready.set(1 if svc.state == "ready" else 0)
    svc.update_gpu_metrics()
    return PlainTextResponse(generate_latest(svc.metrics.registry).decode(), media_type="text/plain; version=0.0.4")


# ---- jobs -------------------------------------------------------------------------------
@router.post("/lipsync", status_code=202, tags=["jobs"])
async def create_job(request: Request) -> JSONResponse:
    svc = _state(request)
    if svc.stopping:
        raise APIError(503, "SHUTTING_DOWN", "the service is shutting down", {"Retry-After": "30"})
    waiting = svc.store.count(QUEUED)
    if waiting >= svc.settings.max_queue:
        retry = int(svc.estimate_wait(waiting)) or 60
        raise APIError(429, "QUEUE_FULL", f"{waiting} jobs are waiting; try again later", {"Retry-After": str(retry)})
    job_id = uuid.uuid4().hex
    work = svc.jobs_dir / job_id
    work.mkdir(parents=True)
    try:
        video, audio, params = await _read_inputs(request, svc, work)
        _validate_media(video, audio, svc.settings)
        resolved = svc.resolve_params(params)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    job = Job(
        id=job_id,
        status=QUEUED,
        params=resolved,
        video_path=str(video),
        audio_path=str(audio),
        work_dir=str(work),
        webhook_url=params.webhook_url,
    )
    svc.store.insert(job)
    svc.worker.wake()
    view = svc.view(job)
    return JSONResponse(view.model_dump(), status_code=202, headers={"Location": f"/jobs/{job_id}"})


async def _read_inputs(request: Request, svc: Any, work: Path) -> tuple[Path, Path, JobParams]:
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("application/json"):
        raw = await request.body()
        if len(raw) > 64 * 1024:
            raise APIError(413, "PAYLOAD_TOO_LARGE", "JSON body too large")
        try:
            req = PathRequest.model_validate(json.loads(raw or b"{}"))
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


def _validate_media(video: Path, audio: Path, settings: Any) -> None:
    try:
        vinfo = probe_video(video)
        ainfo = probe_audio(audio)
    except MediaError as exc:
        raise APIError(400, exc.code, exc.message) from exc
    if vinfo.duration > settings.max_video_s:
        raise APIError(
            400, "VIDEO_TOO_LONG", f"video lasts {vinfo.duration:.0f} s; the limit is {settings.max_video_s:.0f} s"
        )
    if ainfo.duration > settings.max_audio_s:
        raise APIError(
            400, "AUDIO_TOO_LONG", f"audio lasts {ainfo.duration:.0f} s; the limit is {settings.max_audio_s:.0f} s"
        )
    if ainfo.duration <= 0.01:
        raise APIError(400, "EMPTY_AUDIO", "the audio track is empty")


@router.get("/jobs", response_model=JobList, tags=["jobs"])
async def list_jobs(
    request: Request,
    status: str | None = Query(None, description="queued, running, succeeded, failed or canceled"),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0),
) -> JobList:
    svc = _state(request)
    if status is not None and status not in STATUSES:
        raise APIError(400, "INVALID_PARAMETER", f"status must be one of {sorted(STATUSES)}")
    jobs, total = svc.store.list(status, limit, offset)
    return JobList(jobs=[svc.view(j) for j in jobs], total=total, limit=limit, offset=offset)


@router.get("/jobs/{job_id}", response_model=JobView, tags=["jobs"])
async def get_job(request: Request, job_id: str) -> JobView:
    svc = _state(request)
    return svc.view(svc.get_job(job_id))


@router.get("/jobs/{job_id}/result", tags=["jobs"])
async def get_result(request: Request, job_id: str) -> FileResponse:
    svc = _state(request)
    job = svc.get_job(job_id)
    if job.status != SUCCEEDED:
        raise APIError(409, "NOT_READY", f"job is {job.status}; the result exists once it has succeeded")
    if job.result_expired or not job.result_path or not Path(job.result_path).is_file():
        raise APIError(410, "RESULT_EXPIRED", "the result was removed after its retention time")
    return FileResponse(job.result_path, media_type="video/mp4", filename=f"lipsync-{job_id}.mp4")


@router.delete("/jobs/{job_id}", tags=["jobs"])
async def delete_job(request: Request, job_id: str) -> Response:
    svc = _state(request)
    job = svc.get_job(job_id)
    if job.status == QUEUED:
        svc.store.update(job_id, status=CANCELED, finished_at=time.time(), error_code="CANCELED",
                         error_message="canceled by request")  # fmt: skip
        shutil.rmtree(job.work_dir, ignore_errors=True)
        svc.metrics.jobs_finished.labels(CANCELED).inc()
        return JSONResponse(svc.view(svc.get_job(job_id)).model_dump())
    if job.status == RUNNING:
        svc.worker.request_cancel(job_id)
        return JSONResponse(svc.view(job).model_dump() | {"status": "canceling"}, status_code=202)
    if job.status in FINAL:
        shutil.rmtree(job.work_dir, ignore_errors=True)
        svc.store.delete(job_id)
        return Response(status_code=204)
    raise APIError(409, "CONFLICT", f"job is {job.status}")


def job_view(svc: Any, job: Job) -> JobView:
    live = svc.worker.live.get(job.id) if job.status == RUNNING else None
    snap = {**{"stage": job.stage, "progress": job.progress, "frames_done": job.frames_done,
               "frames_total": job.frames_total}, **(live or {})}  # fmt: skip
    position = None
    eta = None
    if job.status == QUEUED:
        queued = svc.store.queued_ids()
        position = queued.index(job.id) + 1 if job.id in queued else None
        eta = svc.estimate_wait(position or 0) or None
    elif job.status == RUNNING and job.started_at and snap["progress"] > 0.02:
        elapsed = time.time() - job.started_at
        eta = round(elapsed * (1 - snap["progress"]) / snap["progress"], 1)
    error = {"code": job.error_code, "message": job.error_message or ""} if job.error_code else None
    result_url = f"/jobs/{job.id}/result" if job.status == SUCCEEDED and not job.result_expired else None
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
    )
