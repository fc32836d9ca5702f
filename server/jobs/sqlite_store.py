"""Job records in SQLite (one process): they survive restarts and are the source of truth for
the queue. Every ``sqlite3.DatabaseError`` leaves this module as :class:`StoreUnavailable`."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from server.jobs.file_lock import FileLock, LockHeld
from server.jobs.idempotency import IdempotencyRecord
from server.jobs.model import FINAL, Job, JobStatus
from server.jobs.store import StoreUnavailable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    stage TEXT,
    progress REAL NOT NULL DEFAULT 0,
    frames_done INTEGER NOT NULL DEFAULT 0,
    frames_total INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    params TEXT NOT NULL,
    video_path TEXT NOT NULL,
    audio_path TEXT NOT NULL,
    work_dir TEXT NOT NULL,
    result_path TEXT,
    result_expired INTEGER NOT NULL DEFAULT 0,
    result_info TEXT,
    error_code TEXT,
    error_message TEXT,
    webhook_url TEXT,
    owner TEXT,
    worker TEXT,
    disk_estimate_bytes INTEGER,
    webhook_owed_since REAL,
    webhook_outcome TEXT
);
CREATE INDEX IF NOT EXISTS jobs_status_created ON jobs(status, created_at);
CREATE TABLE IF NOT EXISTS idempotency (
    tenant TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    job_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (tenant, key)
);
CREATE INDEX IF NOT EXISTS idempotency_created ON idempotency(created_at);
"""
# Columns added after the first release: (name, declaration) for ALTER TABLE on older databases.
_ADDED_COLUMNS = [
    ("owner", "TEXT"),
    ("worker", "TEXT"),
    ("disk_estimate_bytes", "INTEGER"),
    ("webhook_owed_since", "REAL"),
    ("webhook_outcome", "TEXT"),
]
# Indexes on added columns: made after the migration (an older table lacks the column before it).
_ADDED_INDEXES = """
CREATE INDEX IF NOT EXISTS jobs_webhook_owed ON jobs(webhook_owed_since) WHERE webhook_owed_since IS NOT NULL;
"""


class StoreInUse(RuntimeError):
    """Another process has the job database open (another service on the same data folder)."""


def lock_path(path: Path) -> Path:
    """The lock its owner holds beside the database (``jobs.sqlite3.lock``)."""
    return path.with_name(path.name + ".lock")


class SQLiteJobStore:
    """The :class:`~server.jobs.store.JobStore` of one process. Thread-safe: the event loop and
    the device threads both write progress. The process holds a lock on it while it is open
    (``exclusive``), so a second service, or ``latentsync db rebuild``, cannot use it meanwhile."""

    shared = False  # one process owns the records and the jobs folder

    def __init__(self, path: Path, exclusive: bool = True):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._owner = FileLock(lock_path(path)) if exclusive else None
        try:
            if self._owner is not None:
                self._owner.acquire()
        except LockHeld as exc:
            raise StoreInUse(f"the job database {path} is in use by another process ({exc})") from None
        try:
            self._open(path)
        except BaseException:
            if getattr(self, "_db", None) is not None:
                self._db.close()
            if self._owner is not None:
                self._owner.release()
            raise

    def _open(self, path: Path) -> None:
        try:
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        except sqlite3.DatabaseError as exc:
            raise StoreUnavailable(f"the job database cannot be opened: {exc}") from exc
        self._db.row_factory = sqlite3.Row
        with self._locked():
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            present = {r[1] for r in self._db.execute("PRAGMA table_info(jobs)").fetchall()}
            for name, decl in _ADDED_COLUMNS:
                if name not in present:
                    self._db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {decl}")
            self._db.executescript(_ADDED_INDEXES)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The connection, one thread at a time; its errors become :class:`StoreUnavailable`
        (the cause chained, so a full disk is still recognised: ``disk.is_disk_full``)."""
        with self._lock:
            try:
                yield
            except sqlite3.DatabaseError as exc:
                raise StoreUnavailable(f"the job database: {exc}") from exc

    def close(self) -> None:
        try:
            with self._locked():
                self._db.close()
        finally:
            if self._owner is not None:
                self._owner.release()

    def insert(self, job: Job) -> None:
        row = self._to_row(job)
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self._locked():
            self._db.execute(f"INSERT INTO jobs ({cols}) VALUES ({marks})", list(row.values()))  # noqa: S608

    def update(self, job_id: str, **fields: object) -> None:
        if not fields:
            return
        row = self._to_row_fields(fields)
        sets = ", ".join(f"{k} = ?" for k in row)
        with self._locked():
            self._db.execute(f"UPDATE jobs SET {sets} WHERE id = ?", [*row.values(), job_id])  # noqa: S608

    def get(self, job_id: str) -> Job | None:
        with self._locked():
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return self._from_row(row) if row else None

    def delete(self, job_id: str) -> None:
        with self._locked():
            self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def list(
        self, status: str | None = None, limit: int = 50, offset: int = 0, owner: str | None = None
    ) -> tuple[list[Job], int]:
        """Jobs, newest first; ``owner`` given: only that owner's."""
        conds, args = [], []
        if status:
            conds, args = [*conds, "status = ?"], [*args, status]
        if owner is not None:
            conds, args = [*conds, "owner = ?"], [*args, owner]
        where = f"WHERE {' AND '.join(conds)}" if conds else ""
        with self._locked():
            total = self._db.execute(f"SELECT COUNT(*) FROM jobs {where}", args).fetchone()[0]  # noqa: S608
            rows = self._db.execute(
                f"SELECT * FROM jobs {where} ORDER BY created_at DESC, id LIMIT ? OFFSET ?",  # noqa: S608
                [*args, limit, offset],
            ).fetchall()
        return [self._from_row(r) for r in rows], total

    def queued_ids(self) -> list[str]:
        """Queued jobs in the order they will run."""
        with self._locked():
            rows = self._db.execute(
                "SELECT id FROM jobs WHERE status = ? ORDER BY created_at, id", (JobStatus.QUEUED,)
            ).fetchall()
        return [r[0] for r in rows]

    def count(self, status: str) -> int:
        with self._locked():
            return self._db.execute("SELECT COUNT(*) FROM jobs WHERE status = ?", (status,)).fetchone()[0]

    def ids_with_status(self, status: str) -> list[str]:
        with self._locked():
            return [r[0] for r in self._db.execute("SELECT id FROM jobs WHERE status = ?", (status,)).fetchall()]

    def expired_results(self, before: float) -> list[Job]:
        with self._locked():
            rows = self._db.execute(
                "SELECT * FROM jobs WHERE status IN (?, ?, ?) AND finished_at < ? AND result_expired = 0",
                (*FINAL, before),
            ).fetchall()
        return [self._from_row(r) for r in rows]

    def purge_finished(self, before: float) -> list[Job]:
        """Remove the records of jobs that ended before ``before``; returns them (their folders
        are the caller's to remove)."""
        with self._locked():
            rows = self._db.execute(
                "SELECT * FROM jobs WHERE status IN (?, ?, ?) AND finished_at < ?",
                (*FINAL, before),
            ).fetchall()
            self._db.executemany("DELETE FROM jobs WHERE id = ?", [(r["id"],) for r in rows])
        return [self._from_row(r) for r in rows]

    def owed_webhooks(self, before: float) -> list[Job]:
        """Jobs whose end event has been owed since before ``before`` (``owed_webhooks.py``)."""
        with self._locked():
            rows = self._db.execute(
                "SELECT * FROM jobs WHERE webhook_owed_since IS NOT NULL AND webhook_owed_since < ?"
                " ORDER BY webhook_owed_since, id",
                (before,),
            ).fetchall()
        return [self._from_row(r) for r in rows]

    def all_ids(self) -> set[str]:
        with self._locked():
            return {r[0] for r in self._db.execute("SELECT id FROM jobs").fetchall()}

    def check(self) -> str:
        """``"ok"`` when SQLite finds every page readable (``PRAGMA quick_check``), else what it found."""
        try:
            with self._lock:
                rows = self._db.execute("PRAGMA quick_check(1)").fetchall()
        except sqlite3.DatabaseError as exc:
            return str(exc)
        return "ok" if rows and rows[0][0] == "ok" else str(rows[0][0] if rows else "no answer")

    def counts_by_status(self) -> dict[str, int]:
        with self._locked():
            rows = self._db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        return {r[0]: r[1] for r in rows}

    def find_idempotency_key(self, tenant: str, key: str, ttl_s: float) -> IdempotencyRecord | None:
        with self._locked():
            row = self._db.execute(
                "SELECT * FROM idempotency WHERE tenant = ? AND key = ? AND created_at >= ?",
                (tenant, key, time.time() - ttl_s),
            ).fetchone()
        return IdempotencyRecord(**dict(row)) if row else None

    def claim_idempotency_key(self, record: IdempotencyRecord, ttl_s: float) -> IdempotencyRecord | None:
        with self._locked():  # one connection under a lock: the delete, insert and read are one step
            self._db.execute("DELETE FROM idempotency WHERE created_at < ?", (time.time() - ttl_s,))
            added = self._db.execute(
                "INSERT OR IGNORE INTO idempotency (tenant, key, fingerprint, job_id, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (record.tenant, record.key, record.fingerprint, record.job_id, record.created_at),
            ).rowcount
            if added:
                return None
            row = self._db.execute(
                "SELECT * FROM idempotency WHERE tenant = ? AND key = ?", (record.tenant, record.key)
            ).fetchone()
        return IdempotencyRecord(**dict(row))

    def release_idempotency_key(self, tenant: str, key: str, job_id: str) -> None:
        with self._locked():
            self._db.execute(
                "DELETE FROM idempotency WHERE tenant = ? AND key = ? AND job_id = ?", (tenant, key, job_id)
            )

    @staticmethod
    def _to_row(job: Job) -> dict[str, Any]:
        return SQLiteJobStore._to_row_fields(asdict(job))

    @staticmethod
    def _to_row_fields(fields: dict[str, Any]) -> dict[str, Any]:
        out = dict(fields)
        for key in ("params", "result_info", "worker"):
            if key in out and out[key] is not None:
                out[key] = json.dumps(out[key])
        if "result_expired" in out:
            out["result_expired"] = int(bool(out["result_expired"]))
        return out

    @staticmethod
    def _from_row(row: sqlite3.Row) -> Job:
        d = dict(row)
        d["params"] = json.loads(d["params"])
        d["result_info"] = json.loads(d["result_info"]) if d["result_info"] else None
        d["worker"] = json.loads(d["worker"]) if d.get("worker") else None
        d["result_expired"] = bool(d["result_expired"])
        return Job(**d)
