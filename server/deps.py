"""FastAPI dependencies: the service, a job looked up by id (404 otherwise), the API key."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from server.errors import APIError
from server.job_store import Job
from server.service import Service


def get_service(request: Request) -> Service:
    return request.app.state.svc


ServiceDep = Annotated[Service, Depends(get_service)]


def get_job(job_id: str, svc: ServiceDep) -> Job:
    return svc.get_job(job_id)


JobDep = Annotated[Job, Depends(get_job)]


def require_api_key(request: Request, svc: ServiceDep) -> None:
    """``Authorization: Bearer <key>`` with one of the configured keys (none configured: open).
    Constant-time comparison, so timing tells nothing about a key."""
    keys = svc.settings.api_keys
    if not keys:
        return
    header = request.headers.get("authorization", "")
    token = header[7:].encode() if header.lower().startswith("bearer ") else b""
    if not any(hmac.compare_digest(token, k.encode()) for k in keys):
        code = "MISSING_API_KEY" if not token else "INVALID_API_KEY"
        raise APIError(401, code, "a valid 'Authorization: Bearer <key>' header is required",
                       {"WWW-Authenticate": "Bearer"})  # fmt: skip
