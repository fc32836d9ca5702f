"""Health of the service: ``GET /health`` (the process answers), ``GET /ready`` (jobs can run:
models loaded, job records readable, room on disk) and ``GET /metrics`` (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import generate_latest

from server.api.deps import ServiceDep, keyed_router
from server.api.errors import STORE_RETRY_AFTER_S
from server.jobs.model import JobStatus
from server.jobs.store import StoreUnavailable

public = APIRouter()  # no key needed
router = keyed_router()


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
    runner = svc.runner
    database = await run_in_threadpool(svc.store_check.state)
    storage = await run_in_threadpool(svc.disk.state)
    try:
        queue_length = svc.store.count(JobStatus.QUEUED) if database == "ok" else None
    except StoreUnavailable:
        queue_length = None
    body = {
        "state": runner.state,
        "database": database,
        "storage": storage,
        "weights": svc.settings.weights,
        "queue_length": queue_length,
        "running": runner.running_id is not None,
        "fast_path": runner.fast_path,
    }
    if runner.state == "ready":
        body.update(runner.describe())
    else:
        body.update(device=None, dtype=None)
    if runner.state == "error":
        body["error"] = runner.load_error
    healthy = runner.state == "ready" and database == "ok" and storage == "ok"
    headers = {} if database == "ok" else {"Retry-After": str(STORE_RETRY_AFTER_S)}
    return JSONResponse(body, status_code=200 if healthy else 503, headers=headers)


@router.get("/metrics", tags=["health"], response_class=PlainTextResponse)
async def metrics(svc: ServiceDep) -> PlainTextResponse:
    m = svc.metrics
    # Metrics answer while the job records cannot be read: that is when they are wanted most.
    database = await run_in_threadpool(svc.store_check.state)
    m.store_up.set(1 if database == "ok" else 0)
    try:
        counts = svc.store.counts_by_status() if database == "ok" else None
    except StoreUnavailable:
        counts = None
    if counts is not None:
        for status in JobStatus:
            m.jobs_by_status.labels(status.value).set(counts.get(status.value, 0))
        m.queue_length.set(counts.get(JobStatus.QUEUED, 0))
    m.ready.set(1 if svc.runner.state == "ready" else 0)
    if svc.runner.state == "ready":
        for kind, value in svc.runner.memory_stats().items():
            m.gpu_memory.labels(kind).set(value)
    return PlainTextResponse(generate_latest(m.registry).decode(), media_type="text/plain; version=0.0.4")
