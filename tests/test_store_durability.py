"""Issue 22 item 2: a damaged job database answers 503 STORE_UNAVAILABLE with Retry-After on
every route, and loses nothing: every job folder keeps its record (job.json), ``latentsync db
check`` finds the damage, ``latentsync db rebuild`` (or the start-up, when the database
cannot be opened) moves the damaged file aside and rebuilds every job from the folders.
Real service processes, real SQLite files damaged on disk, the real command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from server.client_util import ROOT, start_server
from server.jobs.folder import JobFolder, JobFolders
from server.jobs.lifecycle import JobLifecycle
from server.jobs.metrics import Metrics
from server.jobs.model import Job, JobStatus
from server.jobs.rebuild import check_database, rebuild_database
from server.jobs.recorded_store import RecordedStore
from server.jobs.sqlite_store import SQLiteJobStore, StoreInUse
from tests.media_helpers import short_job_inputs
from tests.server_helpers import ServerProcess

FINAL = {"succeeded", "failed", "canceled"}


class _NoWebhooks:
    def send(self, url: str, job: Job) -> None:
        raise AssertionError("no job here has a webhook")


@pytest.fixture(scope="module")
def inputs(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return short_job_inputs(media_dir, tmp_path_factory.mktemp("inputs"))


def _db_command(srv: ServerProcess, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **srv.env}
    return subprocess.run(
        [sys.executable, "-m", "server.cli", "db", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def _damage(path: Path, start: int, end: int) -> None:
    """Garbage over bytes ``start .. end - 1`` of a stopped service's database."""
    with open(path, "r+b") as f:
        f.seek(start)
        f.write(bytes((i * 37 + 11) % 256 for i in range(end - start)))


def _finished_jobs(srv: ServerProcess, inputs: dict[str, Path]) -> dict[str, dict]:
    """One succeeded job and one canceled while queued (behind it): two statuses, two folders."""
    first = srv.post_files(inputs["video"], inputs["audio"]).json()
    second = srv.post_files(inputs["video"], inputs["audio"]).json()
    srv.client.delete(f"/jobs/{second['id']}")
    jobs = {j["id"]: srv.wait(j["id"], FINAL) for j in (first, second)}
    assert sorted(j["status"] for j in jobs.values()) == ["canceled", "succeeded"], jobs
    return jobs


def _start_loaded(srv: ServerProcess, timeout: float = 120.0) -> httpx.Response:
    """Start the service and return /ready once the models are loaded, whatever its status."""
    srv.proc = start_server(srv.env, srv.port, srv.data_dir / "server.log")
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert srv.proc.poll() is None, (srv.data_dir / "server.log").read_text()[-3000:]
        try:
            r = srv.client.get("/ready", timeout=5)
            if r.json().get("state") != "loading":
                return r
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise TimeoutError("the models never loaded")


def test_a_record_follows_every_transition_into_its_folder(tmp_path: Path) -> None:
    store = RecordedStore(SQLiteJobStore(tmp_path / "jobs.sqlite3"))
    lifecycle = JobLifecycle(store, Metrics(), _NoWebhooks())
    folder = JobFolders(tmp_path / "jobs").folder("j1")
    folder.create()
    (folder.path / "input_video.mp4").write_bytes(b"video")
    job = Job(id="j1", status=JobStatus.QUEUED, params={"seed": 1}, video_path="v", audio_path="a",
              work_dir=str(folder.path))  # fmt: skip
    store.insert(job)
    assert folder.read_record() == job
    running = lifecycle.start(job, worker={"host": "h", "device": "cpu:0"})
    assert folder.read_record() == running and running.status == JobStatus.RUNNING
    store.update("j1", stage="denoise", progress=0.5, frames_done=8, frames_total=16)
    assert folder.read_record().progress == 0.0  # progress is not a transition: not written
    canceled = lifecycle.cancel(running)
    kept = folder.read_record()
    assert kept.status == JobStatus.CANCELED and kept.progress == 0.5 and kept == canceled
    assert sorted(p.name for p in folder.path.iterdir()) == ["job.json"]  # the inputs went, the record stays
    store.close()


def test_a_damaged_database_is_503_everywhere_and_db_rebuild_restores_every_job(
    tmp_path: Path, inputs: dict[str, Path]
) -> None:
    srv = ServerProcess(tmp_path / "srv").start()
    try:
        jobs = _finished_jobs(srv, inputs)
        done = next(i for i, j in jobs.items() if j["status"] == "succeeded")
        before = srv.client.get("/jobs").json()
    finally:
        srv.stop()
    db = srv.data_dir / "jobs.sqlite3"
    assert db.stat().st_size >= 12288  # the pages hit below hold the table and its index
    _damage(db, 4096, 12288)
    ready = _start_loaded(srv)
    try:
        assert ready.status_code == 503 and ready.json()["database"] != "ok" and "Retry-After" in ready.headers
        assert srv.client.get("/health").status_code == 200
        calls = [
            ("GET", "/jobs", {}),
            ("GET", f"/jobs/{done}", {}),
            ("GET", f"/jobs/{done}/result", {}),
            ("DELETE", f"/jobs/{done}", {}),
        ]
        for method, path, kw in calls:
            r = srv.client.request(method, path, **kw)
            assert r.status_code == 503, (method, path, r.status_code, r.text)
            assert r.json()["error"]["code"] == "STORE_UNAVAILABLE" and int(r.headers["Retry-After"]) > 0
        assert "latentsync_store_up 0.0" in srv.client.get("/metrics").text  # metrics still answer
        with open(inputs["video"], "rb") as v, open(inputs["audio"], "rb") as a:
            r = srv.client.post("/lipsync", files={"video": v, "audio": a})
        assert (r.status_code, r.json()["error"]["code"]) == (503, "STORE_UNAVAILABLE")
        check = _db_command(srv, "check")
        assert check.returncode == 1 and "error [DB_DAMAGED]" in check.stderr, check
        refused = _db_command(srv, "rebuild")  # the service has it open
        assert refused.returncode == 2 and "error [SERVICE_RUNNING]" in refused.stderr, refused
    finally:
        srv.stop()
    rebuilt = _db_command(srv, "rebuild")
    assert rebuilt.returncode == 0 and "2 jobs" in rebuilt.stdout, rebuilt
    [aside] = [p for p in srv.data_dir.glob("jobs.sqlite3.damaged-*") if not p.name.endswith(("-wal", "-shm"))]
    assert aside.read_bytes()[4096:4200] != db.read_bytes()[4096:4200]  # the damaged file, kept as it was
    assert _db_command(srv, "check").returncode == 0
    srv.start()
    try:
        after = srv.client.get("/jobs").json()
        assert [(j["id"], j["status"], j["attempts"]) for j in after["jobs"]] == [
            (j["id"], j["status"], j["attempts"]) for j in before["jobs"]
        ]
        assert srv.client.get(f"/jobs/{done}/result").content[4:8] == b"ftyp"
        assert srv.post_files(inputs["video"], inputs["audio"]).status_code == 202  # takes work again
    finally:
        srv.stop()


def test_a_database_that_cannot_be_opened_is_rebuilt_at_start(tmp_path: Path, inputs: dict[str, Path]) -> None:
    srv = ServerProcess(tmp_path / "srv").start()
    try:
        job_id = srv.post_files(inputs["video"], inputs["audio"], inference_steps=50).json()["id"]
    finally:
        srv.stop()  # the job stays queued (or goes back to the queue)
    _damage(srv.data_dir / "jobs.sqlite3", 0, 100)  # the header: "file is not a database"
    srv.start()  # ready: rebuilt from the folders before the first request
    try:
        aside = [p for p in srv.data_dir.glob("jobs.sqlite3.damaged-*") if p.name[-4:] not in ("-wal", "-shm")]
        assert len(aside) == 1
        assert srv.client.get(f"/jobs/{job_id}").json()["status"] in {"queued", "running"}
        assert srv.client.delete(f"/jobs/{job_id}").status_code in (200, 202)
        assert srv.wait(job_id, FINAL)["status"] == "canceled"
    finally:
        srv.stop()


def test_rebuild_is_refused_while_the_database_is_open_and_keeps_unreadable_folders_out(tmp_path: Path) -> None:
    path, folders = tmp_path / "jobs.sqlite3", JobFolders(tmp_path / "jobs")
    store = RecordedStore(SQLiteJobStore(path))
    folder = folders.folder("good")
    folder.create()
    store.insert(Job(id="good", status=JobStatus.QUEUED, params={}, video_path="v", audio_path="a",
                     work_dir=str(folder.path)))  # fmt: skip
    with pytest.raises(StoreInUse):
        rebuild_database(path, folders)
    store.close()
    broken = folders.folder("broken")
    broken.create()
    broken.record.write_text("{not json")
    JobFolder(folders.root / "stray").create()  # an upload cut short: no record at all
    report = rebuild_database(path, folders)
    assert report.restored == 1 and sorted(report.unreadable) == ["broken", "stray"]
    assert report.moved_to is not None and report.moved_to.name.startswith("jobs.sqlite3.damaged-")
    found = check_database(path, folders)
    assert found.integrity == "ok" and found.records == 1 and found.ok
    reopened = SQLiteJobStore(path)
    assert reopened.all_ids() == {"good"}
    reopened.update("good", status=JobStatus.FAILED)  # without the folder's copy (a raw store)
    reopened.close()
    differs = check_database(path, folders)
    assert not differs.ok and differs.status_differs == ["good: database failed, folder queued"]
    assert json.loads(folder.record.read_text())["status"] == "queued"
