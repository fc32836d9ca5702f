"""The jobs resource: ``POST /lipsync``, ``GET /jobs``, ``GET /jobs/{id}``, its result, and
``DELETE``. Blocking work (probing media) runs off the event loop, so polls stay fast."""

from __future__ import annotations

from pathlib import Path

from fastapi import Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse

from server.api.deps import (
    CallerDep,
    IntakeDep,
    JobDep,
    LifecycleDep,
    RunnerDep,
    StoreDep,
    ViewsDep,
    keyed_router,
)
from server.api.errors import APIError
from server.api.idempotency import IDEMPOTENCY_HEADER, IDEMPOTENCY_RESPONSES
from server.api.openapi import errors
from server.api.ranges import check_range
from server.api.schemas import JobList, JobView
from server.jobs.model import JobStatus

router = keyed_router()


@router.post(
    "/lipsync",
    status_code=202,
    tags=["jobs"],
    response_model=JobView,
    responses={  # the request body: server/api/openapi.py
        200: {"model": JobView, "description": "A retry (same Idempotency-Key and request): the job it made"},
        **errors(400, 403, 408, 413, 415, 422, 429, 503, 507),
        **IDEMPOTENCY_RESPONSES,
    },
    openapi_extra={"parameters": [IDEMPOTENCY_HEADER]},
)
async def create_job(request: Request, intake: IntakeDep, views: ViewsDep, caller: CallerDep) -> JSONResponse:
    received = await intake.receive(request, caller.owner)
    job, status = received.job, 200 if received.replayed else 202
    return JSONResponse(views.view(job).model_dump(), status_code=status, headers={"Location": f"/jobs/{job.id}"})


@router.get("/jobs", response_model=JobList, tags=["jobs"], responses=errors(400, 422))
async def list_jobs(
    store: StoreDep,
    views: ViewsDep,
    caller: CallerDep,
    status: str | None = Query(None, description="queued, running, succeeded, failed or canceled"),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=2**31),
) -> JobList:
    if status is not None and status not in set(JobStatus):
        raise APIError(400, "INVALID_PARAMETER", f"status must be one of {', '.join(s.value for s in JobStatus)}")
    jobs, total = store.list(status, limit, offset, owner=caller.only_owner)  # the callers' own jobs
    return JobList(jobs=[views.view(j) for j in jobs], total=total, limit=limit, offset=offset)


@router.get("/jobs/{job_id}", response_model=JobView, tags=["jobs"], responses=errors(404, 422))
async def get_job(views: ViewsDep, job: JobDep) -> JobView:
    return views.view(job)


_MP4 = {"video/mp4": {"schema": {"type": "string", "format": "binary"}}}
_RESULT_ERRORS = errors(404, 409, 410, 416, 422)


@router.get(
    "/jobs/{job_id}/result",
    tags=["jobs"],
    response_class=FileResponse,
    responses={
        200: {"description": "The lip-synced MP4 (Range requests: 206)", "content": _MP4},
        **_RESULT_ERRORS,
    },
)
async def get_result(request: Request, job: JobDep) -> FileResponse:
    if job.status != JobStatus.SUCCEEDED:
        raise APIError(409, "NOT_READY", f"job is {job.status}; the result exists once it has succeeded")
    path = Path(job.result_path) if job.result_path else None
    if job.result_expired or path is None or not path.is_file():
        raise APIError(410, "RESULT_EXPIRED", "the result was removed after its retention time")
    if "range" in request.headers:
        check_range(request.headers["range"], path.stat().st_size)
    return FileResponse(path, media_type="video/mp4", filename=f"lipsync-{job.id}.mp4")


@router.head(
    "/jobs/{job_id}/result",
    tags=["jobs"],
    response_class=FileResponse,
    responses={200: {"description": "The result's headers (Content-Length, ETag, ...), no body"}, **_RESULT_ERRORS},
)
async def head_result(request: Request, job: JobDep) -> FileResponse:
    return await get_result(request, job)


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
async def delete_job(lifecycle: LifecycleDep, runner: RunnerDep, views: ViewsDep, job: JobDep) -> Response:
    if job.status == JobStatus.QUEUED:
        return JSONResponse(views.view(lifecycle.cancel(job)).model_dump())
    if job.status == JobStatus.RUNNING:
        runner.cancel(job.id)
        return JSONResponse(views.view(job).model_dump() | {"status": "canceling"}, status_code=202)
    lifecycle.remove(job)  # a finished job: removed with its files
    return Response(status_code=204)
