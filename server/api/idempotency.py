"""``Idempotency-Key`` on ``POST /lipsync`` (issue 22 item 6): an orchestrator that retries a
submission whose answer it lost gets the job its first attempt made (200), not a second job;
the same key with another request is 409 ``IDEMPOTENCY_KEY_REUSED``. Keys belong to a tenant
(the API key), live ``IDEMPOTENCY_TTL_S`` and are kept in the job store."""

from __future__ import annotations

import re
import time

from starlette.requests import Request

from server.api.errors import APIError
from server.api.schemas import ErrorResponse
from server.jobs.idempotency import IDEMPOTENCY_TTL_S, IdempotencyRecord
from server.jobs.model import Job
from server.jobs.store import JobStore

# Printable ASCII, no space at either end (HTTP would strip it), 1-255 characters.
_KEY_PATTERN = "^[!-~]([ -~]{0,253}[!-~])?$"
_KEY = re.compile(_KEY_PATTERN)
# A record whose job is not in the store yet: another API node claimed the key and is
# inserting the job right now (a deleted job's record is older than this).
IN_FLIGHT_S = 10.0

IDEMPOTENCY_HEADER = {  # POST /lipsync's optional header, for the OpenAPI document
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Makes a retried submission return the job of the first attempt (200) within 24 h",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": _KEY_PATTERN},
}
IDEMPOTENCY_RESPONSES = {
    409: {
        "model": ErrorResponse,
        "description": "The Idempotency-Key was used for another request (IDEMPOTENCY_KEY_REUSED), "
        "or a request with it is in progress (IDEMPOTENCY_KEY_IN_USE)",
    }
}


def idempotency_key(request: Request) -> str | None:
    """The request's ``Idempotency-Key`` header; None without one."""
    raw = request.headers.get("idempotency-key")
    if raw is None:
        return None
    if not _KEY.fullmatch(raw):
        raise APIError(400, "INVALID_IDEMPOTENCY_KEY", "Idempotency-Key must be 1-255 printable ASCII characters")
    return raw


class Idempotency:
    def __init__(self, store: JobStore, ttl_s: float = IDEMPOTENCY_TTL_S):
        self.store, self.ttl_s = store, ttl_s

    def known(self, tenant: str, key: str) -> bool:
        """Whether the key names a job: its retry must not be refused by a full queue."""
        return self.store.find_idempotency_key(tenant, key, self.ttl_s) is not None

    def earlier_job(self, tenant: str, key: str, fingerprint: str) -> Job | None:
        """The job an earlier request with this key made, when the request is the same;
        None when the key names no job (new, expired, or its job was deleted)."""
        record = self.store.find_idempotency_key(tenant, key, self.ttl_s)
        return None if record is None else self._resolve(record, fingerprint)

    def claim(self, tenant: str, key: str, fingerprint: str, job_id: str) -> Job | None:
        """Ties the key to ``job_id`` (None: done, insert the job), or the job an earlier
        request with this key made meanwhile (another node, a concurrent retry)."""
        for _ in range(2):  # a record whose job is gone is released once, then claimed anew
            record = IdempotencyRecord(tenant, key, fingerprint, job_id, time.time())
            earlier = self.store.claim_idempotency_key(record, self.ttl_s)
            if earlier is None:
                return None
            job = self._resolve(earlier, fingerprint)
            if job is not None:
                return job
        raise _in_use()

    def release(self, tenant: str, key: str, job_id: str) -> None:
        """The job was not made after all: the key is free again."""
        self.store.release_idempotency_key(tenant, key, job_id)

    def _resolve(self, record: IdempotencyRecord, fingerprint: str) -> Job | None:
        if record.fingerprint != fingerprint:
            message = "this Idempotency-Key was used for another request (other files or parameters)"
            raise APIError(409, "IDEMPOTENCY_KEY_REUSED", message)
        job = self.store.get(record.job_id)
        if job is not None:
            return job
        if time.time() - record.created_at < IN_FLIGHT_S:
            raise _in_use()
        self.store.release_idempotency_key(record.tenant, record.key, record.job_id)
        return None


def _in_use() -> APIError:
    message = "a request with this Idempotency-Key is in progress"
    return APIError(409, "IDEMPOTENCY_KEY_IN_USE", message, {"Retry-After": "1"})
