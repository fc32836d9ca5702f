"""Removing what no one will ask for again: results past their retention time, finished job
records past theirs, and (at start-up) job folders without a record."""

from __future__ import annotations

import asyncio
import logging
import time

from server.jobs.folder import JobFolder, JobFolders
from server.jobs.store import JobStore

log = logging.getLogger("latentsync.server")


class Housekeeping:
    def __init__(self, store: JobStore, folders: JobFolders, result_ttl_s: float, record_ttl_s: float):
        self.store, self.folders = store, folders
        self.result_ttl_s, self.record_ttl_s = result_ttl_s, record_ttl_s

    def remove_orphans(self) -> int:
        """At start-up (no upload is in flight yet): job folders without a record, left by a
        kill -9 during an upload or a delete, are removed. Not with a shared store: another
        API node may be receiving an upload into the shared folder."""
        if self.store.shared:
            return 0
        known = self.store.all_ids()
        orphans = [folder for folder in self.folders.all() if folder.name not in known]
        for folder in orphans:
            folder.remove()
        if orphans:
            log.info("removed %d orphaned job folders", len(orphans))
        return len(orphans)

    async def loop(self, interval_s: float) -> None:
        while True:
            try:
                await asyncio.to_thread(self.once)
            except Exception:  # never let housekeeping kill the service
                log.exception("cleanup failed")
            await asyncio.sleep(interval_s)

    def once(self) -> None:
        """Results older than their retention time go (the record says so); records older than
        theirs go with their folders."""
        now = time.time()
        for job in self.store.expired_results(now - self.result_ttl_s):
            JobFolder.of(job).remove()
            self.store.update(job.id, result_expired=True)
        for job in self.store.purge_finished(now - self.record_ttl_s):
            JobFolder.of(job).remove()
