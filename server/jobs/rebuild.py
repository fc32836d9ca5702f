"""The job database (SQLite) checked against, and rebuilt from, the job folders.

Every job folder holds its record (``job.json``, ``recorded_store.py``), so a damaged
database loses nothing: :func:`check_database` finds damage (SQLite's ``integrity_check``)
and records that disagree with their folders; :func:`rebuild_database` moves the database
aside (``jobs.sqlite3.damaged-<time>``, its WAL beside it) and builds a new one from the
folders. The service does that by itself at start-up when the database cannot be opened
(:func:`open_store`); a database that opens but is damaged makes every route answer 503
``STORE_UNAVAILABLE`` until ``latentsync db rebuild`` is run (with the service stopped)."""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from latentsync_core.storage.atomic import part_path, remove
from server.jobs.file_lock import FileLock, LockHeld
from server.jobs.folder import JobFolders
from server.jobs.model import Job
from server.jobs.sqlite_store import SQLiteJobStore, StoreInUse, lock_path
from server.jobs.store import StoreUnavailable

log = logging.getLogger("latentsync.server")
_SIDE_FILES = ("-wal", "-shm")  # SQLite's files beside the database, named after it


@dataclass
class DatabaseReport:
    """What :func:`check_database` found. ``integrity`` is ``"ok"`` or SQLite's complaint."""

    integrity: str
    records: int = 0  # rows in the database (0 when it cannot be read)
    folders: int = 0  # job folders holding a record
    only_in_folders: list[str] = field(default_factory=list)  # a folder's record the database lacks
    only_in_database: list[str] = field(default_factory=list)  # a row whose folder has no record
    status_differs: list[str] = field(default_factory=list)  # "id: database X, folder Y"

    @property
    def ok(self) -> bool:
        return self.integrity == "ok" and not (self.only_in_folders or self.only_in_database or self.status_differs)


@dataclass
class RebuildReport:
    moved_to: Path | None  # where the old database went (None: there was none)
    restored: int  # jobs in the new database
    unreadable: list[str]  # job folders without a readable record (left for the start-up sweep)


def folder_records(folders: JobFolders) -> tuple[dict[str, Job], list[str]]:
    """The records kept in the job folders (by id), and the folders without a readable one."""
    records: dict[str, Job] = {}
    unreadable: list[str] = []
    for folder in folders.all():
        if not folder.path.is_dir() or folder.path.is_symlink():
            continue
        job = folder.read_record()
        if job is None or job.id != folder.name:
            unreadable.append(folder.name)
        else:
            records[job.id] = job
    return records, unreadable


def check_database(path: Path, folders: JobFolders) -> DatabaseReport:
    """Read-only (safe while the service runs): SQLite's full integrity check, then each
    row's status against its folder's record."""
    if not path.exists():
        return DatabaseReport(integrity="no database file")
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.DatabaseError as exc:
        return DatabaseReport(integrity=f"cannot be opened: {exc}")
    try:
        rows = db.execute("PRAGMA integrity_check(20)").fetchall()
        integrity = "ok" if rows == [("ok",)] else "; ".join(str(r[0]) for r in rows) or "no answer"
        statuses = dict(db.execute("SELECT id, status FROM jobs").fetchall()) if integrity == "ok" else {}
    except sqlite3.DatabaseError as exc:
        integrity, statuses = str(exc), {}
    finally:
        db.close()
    records, _ = folder_records(folders)
    report = DatabaseReport(integrity=integrity, records=len(statuses), folders=len(records))
    if integrity != "ok":
        return report
    report.only_in_folders = sorted(records.keys() - statuses.keys())
    report.only_in_database = sorted(statuses.keys() - records.keys())
    report.status_differs = sorted(
        f"{job_id}: database {statuses[job_id]}, folder {records[job_id].status}"
        for job_id in statuses.keys() & records.keys()
        if statuses[job_id] != records[job_id].status
    )
    return report


def rebuild_database(path: Path, folders: JobFolders, reason: str = "damaged") -> RebuildReport:
    """Move the database aside (``<name>.<reason>-<time>``) and build a new one from the job
    folders' records. Raises :class:`StoreInUse` while a service has the database open."""
    owner = FileLock(lock_path(path))
    try:
        owner.acquire()
    except LockHeld as exc:
        raise StoreInUse(f"stop the service first: {exc}") from None
    try:
        records, unreadable = folder_records(folders)
        new = part_path(path)
        try:
            store = SQLiteJobStore(new, exclusive=False)
            try:
                for job in sorted(records.values(), key=lambda j: (j.created_at, j.id)):
                    store.insert(job)
            finally:
                store.close()  # the last connection: SQLite folds the WAL into the file
            moved = _move_aside(path, reason)
            os.replace(new, path)
        finally:
            for suffix in ("", *_SIDE_FILES):
                remove(Path(f"{new}{suffix}"))
    finally:
        owner.release()
    log.warning("job database rebuilt from %d job folders (old one: %s)", len(records), moved)
    return RebuildReport(moved_to=moved, restored=len(records), unreadable=unreadable)


def _move_aside(path: Path, reason: str) -> Path | None:
    if not path.exists():
        return None
    target = path.with_name(f"{path.name}.{reason}-{time.strftime('%Y%m%dT%H%M%S')}")
    os.replace(path, target)
    for suffix in _SIDE_FILES:  # the WAL goes with it: the old database stays readable as it was
        side = Path(f"{path}{suffix}")
        if side.exists():
            os.replace(side, Path(f"{target}{suffix}"))
    return target


def open_store(path: Path, folders: JobFolders) -> SQLiteJobStore:
    """The service's store. A database that cannot be opened is moved aside and rebuilt
    from the job folders first (logged); one that opens but is damaged is opened as it is
    (routes answer 503 STORE_UNAVAILABLE; ``latentsync db rebuild`` mends it)."""
    try:
        return SQLiteJobStore(path)
    except StoreUnavailable as exc:
        log.error("the job database cannot be opened (%s): rebuilding it from the job folders", exc)
    rebuild_database(path, folders)
    return SQLiteJobStore(path)
