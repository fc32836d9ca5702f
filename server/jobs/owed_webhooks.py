"""Webhook events the records owe (issue 22: every end event is delivered at least once).

A job that ends with a ``webhook_url`` gets ``webhook_owed_since`` in the same store update
that makes it final (``lifecycle._end``), so a process killed before or during the delivery
loses nothing: the record still says the event is owed. The mark is cleared when the
delivery is settled (delivered, or retries exhausted: ``webhook_outcome`` says which).
Housekeeping re-sends what is still owed: everything owed before the process started (its
sender is gone), and anything owed for longer than the longest delivery can take (a worker
host killed mid-delivery). A re-send carries the same event id (``webhooks.event_id``), so
receivers drop duplicates; duplicates may happen, losses may not."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from server.jobs.model import Job
from server.jobs.store import JobStore, StoreUnavailable

log = logging.getLogger("latentsync.server")

DELIVERED, GAVE_UP = "delivered", "gave_up"


class JobNotifier(Protocol):
    """Told of every job that ended (``webhooks.WebhookSender``); must not block. ``settle``
    (when given) is called from a worker thread with True (delivered) or False (refused, or
    retries exhausted); never when the process dies first."""

    def send(self, url: str, job: Job, settle: Callable[[bool], None] | None = None) -> None: ...


class WebhookSending(JobNotifier, Protocol):
    def longest_delivery_s(self) -> float: ...


def settle(store: JobStore, job_id: str, delivered: bool) -> None:
    """The event of ``job_id`` is no longer owed: delivered, or given up (logged)."""
    if not delivered:
        log.warning("webhook of job %s: gave up (retries exhausted or refused); the record says so", job_id)
    try:
        store.update(job_id, webhook_owed_since=None, webhook_outcome=DELIVERED if delivered else GAVE_UP)
    except StoreUnavailable:  # the record stays owed: housekeeping sends it again later
        log.exception("webhook of job %s settled, but its record could not be updated", job_id)


def send_owed(store: JobStore, sender: JobNotifier, job: Job) -> None:
    """Send the end event of ``job`` (its record already owes it); settle the record after."""
    if job.webhook_url:
        sender.send(job.webhook_url, job, lambda delivered: settle(store, job.id, delivered))


class Redelivery:
    """Housekeeping's part: re-sends what the records still owe. ``started_at``: when this
    process began (whatever was owed before then has no delivery running here)."""

    def __init__(self, store: JobStore, sender: WebhookSending, started_at: float | None = None):
        self.store, self.sender = store, sender
        self.started_at = time.time() if started_at is None else started_at

    def once(self, now: float | None = None) -> int:
        """Re-send every event owed since before this process started or for longer than a
        delivery can take; returns how many. Each is marked owed from now first, so the next
        pass leaves it to the delivery under way."""
        now = time.time() if now is None else now
        cutoff = max(self.started_at, now - self.sender.longest_delivery_s())
        owed = self.store.owed_webhooks(cutoff)
        for job in owed:
            self.store.update(job.id, webhook_owed_since=now)
            log.info("webhook of job %s still owed: sending it again", job.id)
            send_owed(self.store, self.sender, job)
        return len(owed)
