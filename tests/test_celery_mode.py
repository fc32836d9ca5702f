"""Many hosts: a real redis-server, an API process and two worker processes (CPU, demo
weights) sharing one data folder, as API nodes and GPU hosts share a mount."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from server.client_util import ROOT
from server.jobs.redis_store import RedisJobStore
from tests.media_helpers import make_audio, make_clip
from tests.redis_helpers import redis_server
from tests.server_helpers import ServerProcess

LEASE_S = 3.0


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


class WorkerProcess:
    def __init__(self, name: str, env: dict[str, str], log: Path):
        self.name = name
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server.worker_cli", "--gpus", "cpu", "--name", name],
            cwd=ROOT,
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            stdout=open(log, "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            text = self.log.read_text(errors="replace")
            if " ready." in text:  # Celery's line once the worker consumes
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited: {text[-2000:]}")
            time.sleep(0.3)
        raise TimeoutError(f"worker {self.name} not ready")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def cluster(redis_url: str, tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("shared")
    settings = {"broker_url": redis_url, "worker_lease_s": LEASE_S, "max_queue": 2, "detect_workers": 1}
    api = ServerProcess(data, **settings).start()
    workers: list[WorkerProcess] = []
    try:
        for name in ("w1", "w2"):  # one after the other: the first builds the demo weights in the shared cache
            workers.append(WorkerProcess(name, api.env, data / f"{name}.log"))
            workers[-1].wait_ready()
        yield api, {w.name: w for w in workers}, RedisJobStore(redis_url)
    finally:
        for worker in workers:
            worker.stop()
        api.stop()


@pytest.fixture(scope="module")
def inputs(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("media")
    video = make_clip(media_dir / "demo1_video.mp4", folder / "v.mp4", 0.6, start=1.0)
    return video, make_audio(media_dir / "demo1_audio.wav", folder / "a.wav", 0.6)


def _final(api: ServerProcess, job_id: str) -> dict:
    return api.wait(job_id, {"succeeded", "failed", "canceled"}, timeout=300)


def test_jobs_spread_over_both_workers(cluster, inputs: tuple[Path, Path]) -> None:
    api, _, store = cluster
    ids = [api.post_files(*inputs).json()["id"] for _ in range(2)]
    assert [_final(api, i)["status"] for i in ids] == ["succeeded", "succeeded"]
    records = [store.get(i) for i in ids]
    assert {r.worker["host"] for r in records} == {"w1", "w2"}
    assert all(r.worker["device"] == "cpu:0" for r in records)
    assert max(r.started_at for r in records) < min(r.finished_at for r in records)  # at the same time
    assert api.client.get(f"/jobs/{ids[0]}/result").content[4:8] == b"ftyp"


def test_cancel_reaches_a_job_on_another_host(cluster, inputs: tuple[Path, Path]) -> None:
    api, _, store = cluster
    job_id = api.post_files(*inputs, inference_steps=200).json()["id"]
    api.wait(job_id, {"running"})
    assert api.client.delete(f"/jobs/{job_id}").status_code == 202
    job = _final(api, job_id)
    assert job["status"] == "canceled" and store.get(job_id).worker["host"] in {"w1", "w2"}


def test_burst_over_the_queue_limit_is_refused(cluster, inputs: tuple[Path, Path]) -> None:
    """Two devices busy and two jobs waiting (max_queue 2): the fifth is refused."""
    api, _, _ = cluster
    answers = [api.post_files(*inputs, inference_steps=200) for _ in range(5)]
    codes = [a.status_code for a in answers]
    refused = [a for a in answers if a.status_code == 429]
    try:
        assert codes.count(202) <= 4 and refused
        assert refused[0].json()["error"]["code"] == "QUEUE_FULL" and int(refused[0].headers["Retry-After"]) > 0
    finally:
        for a in answers:
            if a.status_code == 202:
                api.client.delete(f"/jobs/{a.json()['id']}")
        for a in answers:
            if a.status_code == 202:
                assert _final(api, a.json()["id"])["status"] == "canceled"


def test_killed_worker_job_finishes_on_the_other(cluster, inputs: tuple[Path, Path]) -> None:
    api, workers, store = cluster
    job_id = api.post_files(*inputs, inference_steps=12).json()["id"]
    api.wait(job_id, {"running"})
    first = store.get(job_id).worker["host"]
    workers[first].proc.kill()  # kill -9: no shutdown, the lease stops being renewed
    workers[first].proc.wait()
    job = _final(api, job_id)
    record = store.get(job_id)
    assert job["status"] == "succeeded" and record.attempts == 2
    assert record.worker["host"] == ({"w1", "w2"} - {first}).pop()
