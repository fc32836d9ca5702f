"""FastAPI dependencies: what the routes use of the service (the job store and the runner by
their protocols, the job views, the intake), the caller (who the API key says it is), and a
job looked up by id and visible to that caller (404 otherwise)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from server.api.errors import APIError
from server.api.face_intake import FaceIntake
from server.api.intake import Intake
from server.api.openapi import errors
from server.api.service import Service
from server.api.views import JobViews
from server.faces.scanner import FaceScanner
from server.jobs.lifecycle import JobLifecycle
from server.jobs.model import Job
from server.jobs.store import JobStore
from server.runners.runner import JobRunner
from server.settings import Settings


# The dependencies are ``async def``: FastAPI runs a plain ``def`` dependency on a worker
# thread, and each such hop waits for a thread and the GIL twice (three hops per poll cost
# milliseconds each while the GPU thread and upload checks compete for the GIL).
async def get_service(request: Request) -> Service:
    return request.app.state.svc


async def get_settings(request: Request) -> Settings:
    return request.app.state.svc.settings


async def get_store(request: Request) -> JobStore:
    return request.app.state.svc.store


async def get_runner(request: Request) -> JobRunner:
    return request.app.state.svc.runner


async def get_lifecycle(request: Request) -> JobLifecycle:
    return request.app.state.svc.lifecycle


async def get_views(request: Request) -> JobViews:
    return request.app.state.svc.views


async def get_intake(request: Request) -> Intake:
    return request.app.state.svc.intake


ServiceDep = Annotated[Service, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[JobStore, Depends(get_store)]
RunnerDep = Annotated[JobRunner, Depends(get_runner)]
LifecycleDep = Annotated[JobLifecycle, Depends(get_lifecycle)]
ViewsDep = Annotated[JobViews, Depends(get_views)]
IntakeDep = Annotated[Intake, Depends(get_intake)]


@dataclass(frozen=True)
class Caller:
    """Who is calling. ``owner`` is the SHA-256 of the caller's key (what a job stores; the key
    itself is never stored); ``None`` when no keys are configured. An admin key, or an open
    service, sees every job."""

    owner: str | None
    admin: bool

    @property
    def only_owner(self) -> str | None:
        """The owner a job query must be restricted to; ``None``: every job."""
        return None if self.admin else self.owner

    def may_see(self, job: Job) -> bool:
        return self.admin or job.owner == self.owner


def key_owner(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def require_api_key(request: Request, settings: SettingsDep) -> Caller:
    """``Authorization: Bearer <key>`` with one of the configured keys (none configured: open).
    Constant-time comparison, so timing tells nothing about a key."""
    keys, admins = settings.api_keys, settings.admin_api_keys
    if not keys and not admins:
        return Caller(owner=None, admin=True)
    header = request.headers.get("authorization", "")
    token = header[7:].encode() if header.lower().startswith("bearer ") else b""
    # Every key is compared (no early exit), so timing does not tell which list matched.
    is_user = [hmac.compare_digest(token, k.encode()) for k in keys]
    is_admin = [hmac.compare_digest(token, k.encode()) for k in admins]
    if not any(is_user) and not any(is_admin):
        code = "MISSING_API_KEY" if not token else "INVALID_API_KEY"
        message = "a valid 'Authorization: Bearer <key>' header is required"
        raise APIError(401, code, message, {"WWW-Authenticate": "Bearer"})
    return Caller(owner=key_owner(token.decode()), admin=any(is_admin))


CallerDep = Annotated[Caller, Depends(require_api_key)]


def keyed_router() -> APIRouter:
    """A router whose every route needs a valid API key (when keys are configured)."""
    return APIRouter(dependencies=[Depends(require_api_key)], responses=errors(401))


def job_not_found(job_id: str) -> APIError:
    return APIError(404, "JOB_NOT_FOUND", f"no job with id '{job_id[:64]}'")


async def get_job(job_id: str, store: StoreDep, caller: CallerDep) -> Job:
    """The one ownership check of a single job: another tenant's job does not exist for the
    caller (404, the same answer as an unknown id, so ids cannot be probed)."""
    job = store.get(job_id) if len(job_id) <= 64 else None
    if job is None or not caller.may_see(job):
        raise job_not_found(job_id)
    return job


JobDep = Annotated[Job, Depends(get_job)]


# ---- face scans (POST /faces) ----------------------------------------------------------------
async def get_face_intake(request: Request) -> FaceIntake:
    return request.app.state.svc.face_intake


async def get_face_scanner(request: Request) -> FaceScanner:
    return request.app.state.svc.face_scanner


FaceIntakeDep = Annotated[FaceIntake, Depends(get_face_intake)]
FaceScannerDep = Annotated[FaceScanner, Depends(get_face_scanner)]
