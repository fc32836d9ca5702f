"""Who may start an upload, and when a received job may join the queue (issue 22 item 1).

An upload in flight holds no queue slot: a client that sends the headers of a big upload and
then nothing (or one byte now and then) must not make every other client's upload 429. What
bounds the uploads in flight is a number per client (its API key, or its address when no keys
are configured): :class:`UploadSlots`. The queue is checked twice: before the body is read (a
full queue refuses at once, without taking the bytes) and again when the received, checked job
is inserted, under one lock with the insert, so concurrent uploads never overfill it.
A key may also hold at most ``max_queue_per_key`` of the queued jobs, so one tenant cannot
fill the queue for all."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from server.api.errors import APIError
from server.api.views import JobViews
from server.jobs.model import JobStatus
from server.jobs.store import JobStore

UPLOAD_RETRY_AFTER_S = 5  # an upload in flight usually ends within seconds


class UploadSlots:
    """Uploads in flight per client, at most ``per_client`` each (in this API process)."""

    def __init__(self, per_client: int):
        self.per_client = per_client
        self._lock = threading.Lock()
        self._held: Counter[str] = Counter()

    @contextmanager
    def hold(self, client: str) -> Iterator[None]:
        with self._lock:
            if self._held[client] >= self.per_client:
                message = (
                    f"{self._held[client]} uploads of this client are still being received "
                    f"(at most {self.per_client} at once); finish or drop one first"
                )
                raise APIError(429, "TOO_MANY_UPLOADS", message, {"Retry-After": str(UPLOAD_RETRY_AFTER_S)})
            self._held[client] += 1
        try:
            yield
        finally:
            with self._lock:
                self._held[client] -= 1
                if not self._held[client]:
                    del self._held[client]

    def in_flight(self, client: str) -> int:
        with self._lock:
            return self._held[client]


class QueueAdmission:
    """Room in the queue: at most ``max_queue`` queued jobs in all, and with API keys at most
    ``max_queue_per_key`` (0: no per-key bound) of one key's."""

    def __init__(self, store: JobStore, views: JobViews, max_queue: int, max_queue_per_key: int):
        self.store, self.views = store, views
        self.max_queue, self.max_queue_per_key = max_queue, max_queue_per_key
        self.lock = threading.Lock()  # held from the last check to the insert (see Intake)

    def check(self, owner: str | None) -> None:
        """Raises 429 ``QUEUE_FULL`` when a job of ``owner`` would not fit now."""
        waiting = self.store.count(JobStatus.QUEUED)
        if waiting >= self.max_queue:
            message = f"{waiting} jobs are waiting; try again later"
            raise APIError(429, "QUEUE_FULL", message, self._retry_after(waiting))
        if owner is not None and self.max_queue_per_key:
            _, mine = self.store.list(JobStatus.QUEUED, 1, 0, owner=owner)
            if mine >= self.max_queue_per_key:
                message = (
                    f"this API key has {mine} jobs waiting, its quota (LATENTSYNC_MAX_QUEUE_PER_KEY) "
                    f"is {self.max_queue_per_key}; try again when one has started"
                )
                raise APIError(429, "QUEUE_FULL", message, self._retry_after(mine))

    def _retry_after(self, position: int) -> dict[str, str]:
        return {"Retry-After": str(int(self.views.estimate_wait(position)) or 60)}
