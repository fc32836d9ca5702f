"""The job lifecycle on a real SQLite store: every transition updates the record, the
metrics and the webhook together; transitions it does not allow are refused."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from server.jobs.lifecycle import JobLifecycle, TransitionError
from server.jobs.metrics import Metrics
from server.jobs.model import Job, JobStatus
from server.jobs.sqlite_store import SQLiteJobStore as JobStore
from server.jobs.webhooks import WebhookSender


class Hooks:
    """A real HTTP receiver on loopback that keeps what it was sent."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.arrived = threading.Condition()
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(204)
                self.end_headers()
                with hooks.arrived:
                    hooks.received.append(body)
                    hooks.arrived.notify_all()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.received) >= count, timeout)
        return self.received


class World:
    def __init__(self, folder: Path, hooks: Hooks) -> None:
        self.folder, self.hooks = folder, hooks
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.store = JobStore(folder / "jobs.sqlite3")
        self.metrics = Metrics()
        hooks_sender = WebhookSender(self.loop, timeout=5, retries=1, allow=["127.0.0.1"])  # the receiver: loopback
        self.lifecycle = JobLifecycle(self.store, self.metrics, hooks_sender)

    def new_job(self) -> Job:
        work = self.folder / uuid.uuid4().hex
        (work / "tmp").mkdir(parents=True)
        job = Job(id=work.name, status=JobStatus.QUEUED, params={}, video_path="v", audio_path="a",
                  work_dir=str(work), webhook_url=self.hooks.url)  # fmt: skip
        self.store.insert(job)
        return job

    def finished(self, status: str) -> float:
        return self.metrics.registry.get_sample_value("latentsync_jobs_finished_total", {"status": status}) or 0.0

    def close(self) -> None:
        self.lifecycle.webhooks.flush(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.store.close()


@pytest.fixture(scope="module")
def hooks() -> Iterator[Hooks]:
    h = Hooks()
    yield h
    h.server.shutdown()


@pytest.fixture()
def world(tmp_path: Path, hooks: Hooks) -> Iterator[World]:
    hooks.received.clear()
    w = World(tmp_path, hooks)
    yield w
    w.close()


def test_run_to_success_updates_record_metrics_and_webhook(world: World) -> None:
    job = world.lifecycle.start(world.new_job())
    assert job.status == JobStatus.RUNNING and job.attempts == 1 and job.started_at is not None
    done = world.lifecycle.succeed(job, "/r.mp4", {"frames": 3})
    assert done.status == JobStatus.SUCCEEDED and done.progress == 1.0 and done.result_info == {"frames": 3}
    assert world.finished("succeeded") == 1
    sent = world.hooks.wait_for(1)
    assert sent[0]["job"]["id"] == job.id and sent[0]["job"]["status"] == "succeeded"
    assert "result_path" not in sent[0]["job"] and "work_dir" not in sent[0]["job"]


def test_cancelling_a_queued_job_sends_its_webhook_and_removes_its_files(world: World) -> None:
    job = world.new_job()
    ended = world.lifecycle.cancel(job)
    assert ended.status == JobStatus.CANCELED and ended.error_code == "CANCELED"
    assert not Path(job.work_dir).exists()
    assert world.finished("canceled") == 1
    assert world.hooks.wait_for(1)[0]["job"]["status"] == "canceled"


def test_failure_keeps_its_code(world: World) -> None:
    job = world.lifecycle.start(world.new_job())
    failed = world.lifecycle.fail(job, "NO_FACE", "no face was found")
    assert (failed.status, failed.error_code, failed.error_message) == ("failed", "NO_FACE", "no face was found")
    assert world.finished("failed") == 1


def test_requeue_at_shutdown_does_not_count_the_attempt(world: World) -> None:
    job = world.lifecycle.start(world.new_job())
    back = world.lifecycle.requeue(job)
    assert back.status == JobStatus.QUEUED and back.attempts == 0 and back.progress == 0.0
    assert world.lifecycle.start(back).attempts == 1
    assert world.finished("canceled") == world.finished("failed") == 0
    assert world.hooks.received == []  # not finished: no webhook


def test_interrupted_twice_fails_interrupted(world: World) -> None:
    job = world.lifecycle.start(world.new_job())
    again = world.lifecycle.interrupt(job)
    assert again.status == JobStatus.QUEUED
    second = world.lifecycle.start(again)
    assert second.attempts == 2
    ended = world.lifecycle.interrupt(second)
    assert ended.status == JobStatus.FAILED and ended.error_code == "INTERRUPTED"
    assert not (Path(job.work_dir) / "tmp").exists()
    assert world.hooks.wait_for(1)[0]["job"]["error_code"] == "INTERRUPTED"


@pytest.mark.parametrize(
    ("prepare", "transition"),
    [
        ("queued", "succeed"),
        ("queued", "requeue"),
        ("queued", "interrupt"),
        ("succeeded", "start"),
        ("succeeded", "cancel"),
        ("canceled", "fail"),
    ],
)
def test_transitions_it_does_not_allow_are_refused(world: World, prepare: str, transition: str) -> None:
    job = world.new_job()
    if prepare == "succeeded":
        job = world.lifecycle.succeed(world.lifecycle.start(job), "/r.mp4", {})
    elif prepare == "canceled":
        job = world.lifecycle.cancel(job)
    before = world.store.get(job.id)
    args = {"succeed": ("/x", {}), "fail": ("X", "x")}.get(transition, ())
    with pytest.raises(TransitionError):
        getattr(world.lifecycle, transition)(job, *args)
    assert world.store.get(job.id) == before
