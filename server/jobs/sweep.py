"""The start-up sweep: what a killed process (kill -9, a lost host, a full disk) left half
written, removed in one pass before the service takes work. Everything the service writes
partially lives in one of these places:

- job folders without a record: an upload in flight, a delete half done;
- a job's ``tmp/`` (frame store, moments, the partial output): no job runs before the sweep
  (``recover`` has already put interrupted jobs back in the queue or failed them);
- ``*.part-*`` files: records (``job.json``) and compile artifacts being written, a
  database being rebuilt (``latentsync_core.storage.atomic``);
- ``.staging-*`` folders of the template cache: entries being built.

Not with a shared store (many hosts): other nodes may be writing into the shared folders
right now; there the template cache drops staging folders older than an hour itself."""

from __future__ import annotations

import logging
from pathlib import Path

from latentsync_core.storage.atomic import PART, remove
from server.jobs.folder import JobFolders
from server.jobs.store import JobStore

log = logging.getLogger("latentsync.server")
STAGING = ".staging-"  # the template cache's entries being built (template_cache.py)


def is_partial(name: str) -> bool:
    return name.startswith(STAGING) or PART in name


class StartupSweep:
    def __init__(self, store: JobStore, folders: JobFolders, data_dir: Path, cache_dirs: list[Path]):
        self.store, self.folders, self.data_dir, self.cache_dirs = store, folders, data_dir, cache_dirs

    def run(self) -> list[Path]:
        """Remove the leftovers (before any upload or job starts); the paths removed."""
        if self.store.shared:
            return []
        known = self.store.all_ids()
        removed: list[Path] = []
        for folder in self.folders.all():
            if folder.name not in known:
                folder.remove()  # an orphan: no record, so nobody will ask for it
                removed.append(folder.path)
                continue
            if folder.tmp.exists():
                folder.remove_tmp()
                removed.append(folder.tmp)
            removed += self._partials(folder.path)
        for place in (self.data_dir, *self.cache_dirs):
            removed += self._partials(place)
        if removed:
            log.info("start-up sweep removed %d leftovers of an earlier run", len(removed))
        return removed

    @staticmethod
    def _partials(place: Path) -> list[Path]:
        if not place.is_dir():
            return []
        found = [child for child in place.iterdir() if is_partial(child.name)]
        for path in found:
            remove(path)
        return found
