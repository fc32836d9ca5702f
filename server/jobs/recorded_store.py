"""A :class:`~server.jobs.store.JobStore` that also keeps each job's record in the job's own
folder (``job.json``, ``JobFolder.write_record``): written when the job is created and after
every change but progress, so the database can be rebuilt from the folders alone
(``rebuild.py``) and a damaged database loses no job. Progress (stage, fraction, frames) is
written to the database only: a rebuilt running job runs again anyway."""

from __future__ import annotations

import logging
import threading

from server.jobs.folder import JobFolder
from server.jobs.idempotency import IdempotencyRecord
from server.jobs.model import Job
from server.jobs.store import JobStore

log = logging.getLogger(__name__)
PROGRESS_FIELDS = frozenset({"stage", "progress", "frames_done", "frames_total"})


class RecordedStore:
    def __init__(self, inner: JobStore):
        self.inner = inner
        self.shared = inner.shared
        # One writer of records at a time: two transitions racing (a cancel and a job's end)
        # must leave the later state in the file, never an older snapshot.
        self._writing = threading.Lock()

    def insert(self, job: Job) -> None:
        JobFolder.of(job).write_record(job)  # first: a record in the database has its copy
        self.inner.insert(job)

    def update(self, job_id: str, **fields: object) -> None:
        if not fields.keys() - PROGRESS_FIELDS:
            self.inner.update(job_id, **fields)
            return
        with self._writing:
            self.inner.update(job_id, **fields)
            job = self.inner.get(job_id)
            if job is None:
                return
            try:
                JobFolder.of(job).write_record(job)
            except OSError as exc:  # a full disk: the database has the change; `db check` shows the lag
                log.warning("the record copy of job %s was not written: %s", job_id, exc)

    # ---- the rest is the inner store's -------------------------------------------------
    def close(self) -> None:
        self.inner.close()

    def get(self, job_id: str) -> Job | None:
        return self.inner.get(job_id)

    def delete(self, job_id: str) -> None:
        self.inner.delete(job_id)

    def list(
        self, status: str | None = None, limit: int = 50, offset: int = 0, owner: str | None = None
    ) -> tuple[list[Job], int]:
        return self.inner.list(status, limit, offset, owner)

    def queued_ids(self) -> list[str]:
        return self.inner.queued_ids()

    def count(self, status: str) -> int:
        return self.inner.count(status)

    def ids_with_status(self, status: str) -> list[str]:
        return self.inner.ids_with_status(status)

    def expired_results(self, before: float) -> list[Job]:
        return self.inner.expired_results(before)

    def purge_finished(self, before: float) -> list[Job]:
        return self.inner.purge_finished(before)

    def owed_webhooks(self, before: float) -> list[Job]:
        return self.inner.owed_webhooks(before)

    def all_ids(self) -> set[str]:
        return self.inner.all_ids()

    def check(self) -> str:
        return self.inner.check()

    def counts_by_status(self) -> dict[str, int]:
        return self.inner.counts_by_status()

    def find_idempotency_key(self, tenant: str, key: str, ttl_s: float) -> IdempotencyRecord | None:
        return self.inner.find_idempotency_key(tenant, key, ttl_s)

    def claim_idempotency_key(self, record: IdempotencyRecord, ttl_s: float) -> IdempotencyRecord | None:
        return self.inner.claim_idempotency_key(record, ttl_s)

    def release_idempotency_key(self, tenant: str, key: str, job_id: str) -> None:
        self.inner.release_idempotency_key(tenant, key, job_id)
