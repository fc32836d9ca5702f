"""Both job stores turn their back-end's errors into the one ``StoreUnavailable`` (routes,
/ready and the device workers catch only that), the cause chained so that a full disk is
still recognised; a job's folder is removed without following what stands in its place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from server.client_util import free_port
from server.jobs.disk import is_disk_full
from server.jobs.folder import JobFolder, JobFolders
from server.jobs.model import Job, JobStatus
from server.jobs.sqlite_store import SQLiteJobStore
from server.jobs.store import StoreUnavailable


def _job(job_id: str, folder: Path) -> Job:
    return Job(id=job_id, status=JobStatus.QUEUED, params={}, video_path="v", audio_path="a", work_dir=str(folder))


def test_a_sqlite_error_leaves_the_store_as_store_unavailable(tmp_path: Path) -> None:
    store = SQLiteJobStore(tmp_path / "jobs.sqlite3")
    store.insert(_job("a", tmp_path / "a"))
    with pytest.raises(StoreUnavailable) as caught:
        store.insert(_job("a", tmp_path / "a"))  # the same id twice: SQLite refuses
    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)
    store.close()
    with pytest.raises(StoreUnavailable):
        store.count(JobStatus.QUEUED)  # a closed connection


def test_a_full_disk_is_still_seen_through_store_unavailable() -> None:
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = 13  # what sqlite3 sets for SQLITE_FULL
    try:
        try:
            raise full
        except sqlite3.DatabaseError as exc:
            raise StoreUnavailable("the job database: full") from exc
    except StoreUnavailable as wrapped:
        assert is_disk_full(wrapped)


def test_an_unreachable_redis_is_store_unavailable() -> None:
    pytest.importorskip("redis")
    from server.jobs.redis_store import RedisJobStore

    store = RedisJobStore(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    try:
        with pytest.raises(StoreUnavailable):
            store.count(JobStatus.QUEUED)
        assert store.check() != "ok"  # the check reports, it does not raise
    finally:
        store.close()


def test_a_job_folder_is_removed_without_following_links(tmp_path: Path) -> None:
    folders = JobFolders(tmp_path / "jobs")
    folder = folders.folder("j1")
    folder.create()
    (folder.tmp).mkdir()
    (folder.tmp / "frame.bin").write_bytes(b"x")
    folder.result.write_bytes(b"mp4")
    folder.remove_tmp()
    assert not folder.tmp.exists() and folder.result.exists()
    folder.remove()
    assert not folder.path.exists()
    folder.remove()  # already gone: no error
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    (folders.root / "j2").symlink_to(outside, target_is_directory=True)
    [linked] = [f for f in folders.all() if f.name == "j2"]
    linked.remove()
    assert not (folders.root / "j2").exists() and (outside / "keep.txt").read_text() == "keep"
    assert JobFolder.of(_job("j3", folders.root / "j3")).path == folders.root / "j3"
