"""Where job records live: the :class:`JobStore` protocol (SQLite in one process,
``sqlite_store.py``; Redis for many hosts, ``redis_store.py``) and the one error both raise
when they cannot be read or written (:class:`StoreUnavailable`: a damaged database, Redis
unreachable). Callers catch only that, whichever store they were given."""

from __future__ import annotations

import logging
import time
from typing import Protocol

from server.jobs.idempotency import IdempotencyRecord
from server.jobs.model import Job

log = logging.getLogger("latentsync.server")


class StoreUnavailable(RuntimeError):
    """The job records cannot be read or written now; the cause is chained (``__cause__``)."""


class JobStore(Protocol):
    """Thread-safe: the event loop and device threads write to it. Status changes come from
    the lifecycle (``lifecycle.py``) only."""

    # True when other API nodes share the records and the jobs folder (one of them may be
    # receiving an upload into a folder that has no record yet).
    shared: bool

    def close(self) -> None: ...
    def insert(self, job: Job) -> None: ...
    def update(self, job_id: str, **fields: object) -> None: ...
    def get(self, job_id: str) -> Job | None: ...
    def delete(self, job_id: str) -> None: ...

    def list(
        self, status: str | None = None, limit: int = 50, offset: int = 0, owner: str | None = None
    ) -> tuple[list[Job], int]:
        """Jobs, newest first, and how many match; ``owner`` given: only that owner's."""
        ...

    def queued_ids(self) -> list[str]:
        """Queued jobs in the order they will run."""
        ...

    def count(self, status: str) -> int: ...
    def ids_with_status(self, status: str) -> list[str]: ...
    def expired_results(self, before: float) -> list[Job]: ...

    def purge_finished(self, before: float) -> list[Job]:
        """Remove the records of jobs that ended before ``before``; returns them (their folders
        are the caller's to remove)."""
        ...

    def owed_webhooks(self, before: float) -> list[Job]:
        """Jobs whose end event is still owed (``webhook_owed_since``) since before ``before``."""
        ...

    def all_ids(self) -> set[str]: ...

    def check(self) -> str:
        """``"ok"`` when every record is readable, else what is wrong (never raises)."""
        ...

    def counts_by_status(self) -> dict[str, int]: ...

    # Idempotency-Key records (``idempotency.py``); one older than ``ttl_s`` counts as absent.
    def find_idempotency_key(self, tenant: str, key: str, ttl_s: float) -> IdempotencyRecord | None: ...

    def claim_idempotency_key(self, record: IdempotencyRecord, ttl_s: float) -> IdempotencyRecord | None:
        """Stores ``record`` unless its (tenant, key) already names a job: then returns that
        record and stores nothing. Atomic: of two claims at once, one wins."""
        ...

    def release_idempotency_key(self, tenant: str, key: str, job_id: str) -> None:
        """Forgets the key if it still names ``job_id``."""
        ...


class StoreCheck:
    """The store's health for ``/ready``, checked at most every ``max_age_s`` while it is ok
    (SQLite's ``quick_check`` reads every page). Blocking: call it off the event loop."""

    def __init__(self, store: JobStore, max_age_s: float = 5.0):
        self.store, self.max_age_s = store, max_age_s
        self._last: tuple[float, str] = (0.0, "unchecked")  # (when, what the check said)

    def state(self) -> str:
        checked_at, state = self._last
        if time.monotonic() - checked_at > self.max_age_s or state != "ok":
            state = self.store.check()
            if state != "ok":
                log.error("the job database is damaged: %s", state)
            self._last = (time.monotonic(), state)
        return state
