"""Removing what no one will ask for again: results past their retention time and finished
job records past theirs (what a killed process left: ``sweep.py``, at start-up); and sending
again the webhook events the records still owe (``owed_webhooks.py``): the first pass runs
at start-up, so whatever a killed process owed goes out at once."""

from __future__ import annotations

import asyncio
import logging
import time

from server.jobs.folder import JobFolder, JobFolders
from server.jobs.owed_webhooks import Redelivery, WebhookSending
from server.jobs.store import JobStore

log = logging.getLogger("latentsync.server")


class Housekeeping:
    def __init__(
        self,
        store: JobStore,
        folders: JobFolders,
        result_ttl_s: float,
        record_ttl_s: float,
        webhooks: WebhookSending | None = None,
    ):
        self.store, self.folders = store, folders
        self.result_ttl_s, self.record_ttl_s = result_ttl_s, record_ttl_s
        # Made with the process: what was owed before it began has no delivery running here.
        self.redelivery = Redelivery(store, webhooks) if webhooks is not None else None

    async def loop(self, interval_s: float) -> None:
        while True:
            try:
                await asyncio.to_thread(self.once)
            except Exception:  # never let housekeeping kill the service
                log.exception("cleanup failed")
            await asyncio.sleep(interval_s)

    def once(self) -> None:
        """Owed webhook events go out again; results older than their retention time go (the
        record says so); records older than theirs go with their folders."""
        now = time.time()
        if self.redelivery is not None:
            self.redelivery.once(now)  # before the purge: a record owing an event is sent first
        for job in self.store.expired_results(now - self.result_ttl_s):
            JobFolder.of(job).remove_files()  # the record (job.json) stays until the job is purged
            self.store.update(job.id, result_expired=True)
        for job in self.store.purge_finished(now - self.record_ttl_s):
            JobFolder.of(job).remove()
