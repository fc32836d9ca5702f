"""FastAPI dependencies: the service, the caller (who the API key says it is), a job looked
up by id and visible to that caller (404 otherwise)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from server.errors import APIError
from server.jobs.model import Job
from server.service import Service


# The dependencies are ``async def``: FastAPI runs a plain ``def`` dependency on a worker
# thread, and each such hop waits for a thread and the GIL twice (three hops per poll cost
# milliseconds each while the GPU thread and upload checks compete for the GIL).
async def get_service(request: Request) -> Service:
    return request.app.state.svc


ServiceDep = Annotated[Service, Depends(get_service)]


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


async def require_api_key(request: Request, svc: ServiceDep) -> Caller:
    """``Authorization: Bearer <key>`` with one of the configured keys (none configured: open).
    Constant-time comparison, so timing tells nothing about a key."""
    keys, admins = svc.settings.api_keys, svc.settings.admin_api_keys
    if not keys and not admins:
        return Caller(owner=None, admin=True)
    header = request.headers.get("authorization", "")
    token = header[7:].encode() if header.lower().startswith("bearer ") else b""
    # Every key is compared (no early exit), so timing does not tell which list matched.
    is_user = [hmac.compare_digest(token, k.encode()) for k in keys]
    is_admin = [hmac.compare_digest(token, k.encode()) for k in admins]
    if not any(is_user) and not any(is_admin):
        code = "MISSING_API_KEY" if not token else "INVALID_API_KEY"
        raise APIError(401, code, "a valid 'Authorization: Bearer <key>' header is required",
                       {"WWW-Authenticate": "Bearer"})  # fmt: skip
    return Caller(owner=key_owner(token.decode()), admin=any(is_admin))


CallerDep = Annotated[Caller, Depends(require_api_key)]


async def get_job(job_id: str, svc: ServiceDep, caller: CallerDep) -> Job:
    """The one ownership check of a single job: another tenant's job does not exist for the
    caller (404, the same answer as an unknown id, so ids cannot be probed)."""
    job = svc.get_job(job_id)
    if not caller.may_see(job):
        raise svc.job_not_found(job_id)
    return job


JobDep = Annotated[Job, Depends(get_job)]
