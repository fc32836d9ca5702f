"""Durable webhook delivery (issue 22's soak guarantee: every end event is delivered at least
once, with a stable id). The record owes the event from the update that ends the job until
it is delivered or given up; housekeeping sends what is still owed (at start-up at once, and
whatever has been owed for longer than a delivery can take)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from server.client_util import free_port
from server.jobs.folder import JobFolders
from server.jobs.lifecycle import JobLifecycle
from server.jobs.metrics import Metrics
from server.jobs.model import Job, JobStatus
from server.jobs.owed_webhooks import Redelivery
from server.jobs.rebuild import rebuild_database
from server.jobs.recorded_store import RecordedStore
from server.jobs.redis_store import RedisJobStore
from server.jobs.sqlite_store import SQLiteJobStore
from server.jobs.webhooks import WebhookSender
from tests.media_helpers import short_job_inputs
from tests.redis_helpers import redis_server
from tests.server_helpers import ServerProcess
from tests.webhook_helpers import Receiver


def _until(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.time() + timeout
    while not check() and time.time() < deadline:
        time.sleep(0.1)
    assert check(), "condition not met in time"


# ---- a real service killed while its delivery is retrying -------------------------------------
def test_an_event_owed_when_the_service_is_killed_is_delivered_after_the_restart(
    media_dir: Path, tmp_path: Path
) -> None:
    port = free_port()  # the receiver is down: nothing listens there, so every attempt is refused
    hook = f"http://127.0.0.1:{port}/hook"
    # Six attempts with 1+2+4+8+16 s of back-off between them: over 30 s of retrying to kill into.
    srv = ServerProcess(tmp_path / "srv", webhook_allow_hosts="127.0.0.1", webhook_retries=6, webhook_timeout_s=5)
    srv.start()
    receiver = None
    try:
        inputs = short_job_inputs(media_dir, tmp_path)
        job = srv.post_files(inputs["video"], inputs["audio"], webhook_url=hook).json()
        assert srv.wait(job["id"], {"succeeded", "failed"})["status"] == "succeeded"
        log = srv.data_dir / "server.log"
        _until(lambda: "attempt 1 failed" in log.read_text(), timeout=120)  # it is retrying now
        row = srv.db_row(job["id"])
        assert row["webhook_owed_since"] is not None and row["webhook_outcome"] is None
        srv.kill()
        assert "attempt 6" not in log.read_text()  # killed before the retries ran out

        receiver = Receiver(port=port)
        srv.start()  # housekeeping's first pass, at start-up, sends what the record owes
        receiver.wait(1, timeout=120)
        _until(lambda: srv.db_row(job["id"])["webhook_owed_since"] is None, timeout=120)
    finally:
        srv.stop()
        if receiver is not None:
            receiver.close()
    headers, body = receiver.deliveries[0]
    assert headers["Webhook-Id"] == f"evt_{job['id']}_succeeded"  # the id the first attempts carried
    delivered = json.loads(body)
    assert delivered["job"]["id"] == job["id"] and delivered["job"]["status"] == "succeeded"
    assert "webhook_owed_since" not in delivered["job"]  # bookkeeping stays out of the body
    assert srv.db_row(job["id"])["webhook_outcome"] == "delivered"
    assert json.loads((srv.data_dir / "jobs" / job["id"] / "job.json").read_text())["webhook_owed_since"] is None


# ---- the periodic pass: owed for longer than a delivery can take ------------------------------
@pytest.fixture()
def sender_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=30)


def _job(folder: Path, webhook_url: str | None, **fields: object) -> Job:
    work = folder / uuid.uuid4().hex
    (work / "tmp").mkdir(parents=True)
    return Job(id=work.name, status=JobStatus.QUEUED, params={}, video_path="v", audio_path="a",
               work_dir=str(work), webhook_url=webhook_url, **fields)  # fmt: skip


def test_the_end_owes_the_event_and_housekeeping_resends_only_what_is_overdue(
    tmp_path: Path, sender_loop: asyncio.AbstractEventLoop
) -> None:
    receiver = Receiver()
    store = RecordedStore(SQLiteJobStore(tmp_path / "jobs.sqlite3"))
    try:
        sender = WebhookSender(sender_loop, timeout=5, retries=1, allow=["127.0.0.1"])
        longest = sender.longest_delivery_s()
        lifecycle = JobLifecycle(store, Metrics(), sender)
        ended = _job(tmp_path, receiver.url)
        store.insert(ended)
        ended = lifecycle.cancel(ended)  # the update that ends it owes the event ...
        assert ended.webhook_owed_since is not None and ended.webhook_owed_since == ended.finished_at
        sender.flush(timeout=60)
        assert store.get(ended.id).webhook_owed_since is None  # ... until it was delivered
        assert store.get(ended.id).webhook_outcome == "delivered"

        now = time.time()
        overdue = _job(tmp_path, receiver.url)
        recent = _job(tmp_path, receiver.url)
        for job, owed in ((overdue, now - longest - 5), (recent, now - 1)):
            store.insert(job)
            store.update(job.id, status=JobStatus.FAILED, finished_at=owed, webhook_owed_since=owed)
        # This process started before both were owed: only the one owed for longer than a
        # delivery can take goes again (the other may still be on its way).
        Redelivery(store, sender, started_at=now - 10 * longest).once(now)
        sender.flush(timeout=60)
        ids = [h["Webhook-Id"] for h, _ in receiver.deliveries]
        assert ids == [f"evt_{ended.id}_canceled", f"evt_{overdue.id}_failed"]
        assert store.get(overdue.id).webhook_owed_since is None
        assert store.get(recent.id).webhook_owed_since == pytest.approx(now - 1)
        # A process that started after it was owed has no delivery of it running: it goes at once.
        Redelivery(store, sender, started_at=now).once(now)
        sender.flush(timeout=60)
        assert [h["Webhook-Id"] for h, _ in receiver.deliveries][2:] == [f"evt_{recent.id}_failed"]
        assert store.owed_webhooks(time.time() + 1) == []
    finally:
        store.close()
        receiver.close()


def test_a_delivery_that_gives_up_clears_the_mark_and_says_so(
    tmp_path: Path, sender_loop: asyncio.AbstractEventLoop
) -> None:
    store = SQLiteJobStore(tmp_path / "jobs.sqlite3")
    try:
        sender = WebhookSender(sender_loop, timeout=5, retries=1, allow=["127.0.0.1"])
        job = _job(tmp_path, f"http://127.0.0.1:{free_port()}/hook")  # refused
        store.insert(job)
        JobLifecycle(store, Metrics(), sender).cancel(job)
        sender.flush(timeout=60)
        settled = store.get(job.id)
        assert settled.webhook_owed_since is None and settled.webhook_outcome == "gave_up"
    finally:
        store.close()


# ---- the stores: migration, rebuild, Redis ----------------------------------------------------
_BEFORE = (  # the jobs table as it was before webhook_owed_since and webhook_outcome
    "CREATE TABLE jobs (id TEXT PRIMARY KEY, status TEXT NOT NULL, stage TEXT,"
    " progress REAL NOT NULL DEFAULT 0, frames_done INTEGER NOT NULL DEFAULT 0,"
    " frames_total INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL, started_at REAL, finished_at REAL,"
    " attempts INTEGER NOT NULL DEFAULT 0, params TEXT NOT NULL, video_path TEXT NOT NULL,"
    " audio_path TEXT NOT NULL, work_dir TEXT NOT NULL, result_path TEXT,"
    " result_expired INTEGER NOT NULL DEFAULT 0, result_info TEXT, error_code TEXT, error_message TEXT,"
    " webhook_url TEXT, owner TEXT, worker TEXT, disk_estimate_bytes INTEGER)"
)


def test_a_database_from_before_the_owed_mark_opens_and_gets_it(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    db = sqlite3.connect(path)
    db.execute(_BEFORE)
    db.execute(
        "INSERT INTO jobs (id, status, created_at, finished_at, params, video_path, audio_path, work_dir,"
        " webhook_url) VALUES ('old', 'succeeded', 1.0, 2.0, '{}', 'v', 'a', 'w', 'http://127.0.0.1/h')"
    )
    db.commit()
    db.close()
    store = SQLiteJobStore(path)
    try:
        old = store.get("old")
        assert old is not None and old.webhook_owed_since is None and old.webhook_outcome is None
        assert store.owed_webhooks(time.time()) == []
        store.update("old", webhook_owed_since=3.0)
    finally:
        store.close()
    store = SQLiteJobStore(path)  # a second start finds the columns there
    try:
        assert [j.id for j in store.owed_webhooks(4.0)] == ["old"] and store.owed_webhooks(3.0) == []
    finally:
        store.close()


def test_the_job_folders_record_keeps_the_mark_through_a_rebuild(tmp_path: Path) -> None:
    folders = JobFolders(tmp_path / "jobs")
    path = tmp_path / "jobs.sqlite3"
    store = RecordedStore(SQLiteJobStore(path))
    job = _job(folders.root, "http://127.0.0.1/h")
    try:
        store.insert(job)
        store.update(job.id, status=JobStatus.FAILED, finished_at=5.0, webhook_owed_since=5.0)
    finally:
        store.close()
    rebuild_database(path, folders)
    store = SQLiteJobStore(path)
    try:
        assert [(j.id, j.webhook_owed_since) for j in store.owed_webhooks(6.0)] == [(job.id, 5.0)]
    finally:
        store.close()


def test_redis_tracks_the_owed_events_with_the_record(tmp_path: Path) -> None:
    with redis_server(tmp_path) as url:
        store = RedisJobStore(url, prefix="owed-test:")
        try:
            a, b = _job(tmp_path, "http://h/1"), _job(tmp_path, "http://h/2", webhook_owed_since=7.0)
            store.insert(a)
            store.insert(b)  # as a rebuild would insert a record that owes its event
            store.update(a.id, status=JobStatus.SUCCEEDED, finished_at=5.0, webhook_owed_since=5.0)
            assert [j.id for j in store.owed_webhooks(10.0)] == [a.id, b.id]
            assert [j.id for j in store.owed_webhooks(5.0)] == []  # strictly before
            store.update(a.id, webhook_owed_since=None, webhook_outcome="delivered")
            assert store.get(a.id).webhook_outcome == "delivered"
            store.delete(b.id)
            assert store.owed_webhooks(10.0) == []
            assert store.redis.zcard("owed-test:webhooks:owed") == 0
        finally:
            store.close()
