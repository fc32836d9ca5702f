"""``Idempotency-Key`` records (issue 22 item 6): which job a tenant's key made, from which
request. Kept in the job store (SQLite or Redis, through the ``JobStore`` protocol), so a
retry reaches the same job after a restart or on another API node."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

IDEMPOTENCY_TTL_S = 24 * 3600  # a key names its job this long after the first request


@dataclass(frozen=True)
class IdempotencyRecord:
    tenant: str  # the API key's owner hash ("" when no keys are configured)
    key: str  # the client's Idempotency-Key, as sent
    fingerprint: str  # request_fingerprint() of the first request
    job_id: str
    created_at: float


def request_fingerprint(file_digests: dict[str, str], fields: dict[str, Any]) -> str:
    """What makes two requests "the same": the SHA-256 of each uploaded file's bytes and the
    form fields (or JSON members), sorted. Not the raw body: a retry may use another
    multipart boundary, or order its parts otherwise."""
    canonical = json.dumps({"files": file_digests, "fields": fields}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
