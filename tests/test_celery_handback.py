"""Rolling deploys in cluster mode: a SIGTERM'd worker stops its job between denoising steps,
hands it back to the queue (the attempt not counted) and exits; a worker started after it
finishes the job. A real redis-server, API process and worker processes (CPU, demo weights)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from latentsync_core.media.video_io import FrameReader
from server.jobs.model import JobStatus
from server.jobs.redis_store import RedisJobStore
from tests.media_helpers import make_audio, make_clip
from tests.redis_helpers import redis_server
from tests.server_helpers import ServerProcess
from tests.test_celery_mode import WorkerProcess

EXIT_S = 30.0  # the promise for a worker's shutdown


@pytest.fixture(scope="module")
def inputs(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("media")
    video = make_clip(media_dir / "demo1_video.mp4", folder / "v.mp4", 0.6, start=1.0)
    return video, make_audio(media_dir / "demo1_audio.wav", folder / "a.wav", 0.6)


def test_sigterm_hands_the_job_back_to_another_worker(
    inputs: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        data = tmp_path_factory.mktemp("shared")
        api = ServerProcess(data, broker_url=url, worker_lease_s=3.0, detect_workers=1).start()
        store = RedisJobStore(url)
        first = WorkerProcess("w1", api.env, data / "w1.log")
        second = None
        try:
            first.wait_ready()
            # Enough steps that the job is still denoising when the signal lands (its stage
            # shows within a second of the first step, each a good part of a second on a CPU), few
            # enough that the second worker finishes soon.
            job_id = api.post_files(*inputs, inference_steps=16).json()["id"]
            deadline = time.time() + 240
            while (job := api.client.get(f"/jobs/{job_id}").json())["stage"] != "denoise":
                assert job["status"] in {"queued", "running"} and time.time() < deadline, job
                time.sleep(0.2)
            assert store.get(job_id).attempts == 1
            first.proc.send_signal(signal.SIGTERM)
            sent = time.monotonic()
            code = first.proc.wait(timeout=120)
            assert time.monotonic() - sent < EXIT_S, "the worker waited for its job"
            assert code == 0
            record = store.get(job_id)
            assert record.status == JobStatus.QUEUED and record.attempts == 0  # handed back, not counted
            assert "handed back at shutdown" in first.log.read_text()

            second = WorkerProcess("w2", api.env, data / "w2.log")  # the rolling deploy's new worker
            second.wait_ready()
            job = api.wait(job_id, {"succeeded", "failed", "canceled"}, timeout=600)
            record = store.get(job_id)
            assert job["status"] == "succeeded", job
            assert record.attempts == 1 and record.worker["host"] == "w2"
            result = data / "result.mp4"
            result.write_bytes(api.client.get(f"/jobs/{job_id}/result").content)
            with FrameReader(result, job["result"]["width"], job["result"]["height"]) as reader:
                assert sum(1 for _ in reader) == job["result"]["frames"] > 0  # it plays
        finally:
            for worker in (first, second):
                if worker is not None:
                    worker.stop()
            api.stop()


def test_a_redis_restart_does_not_fail_the_running_job(tmp_path: Path) -> None:
    """The worker's per-step reads of Redis (the cancel flag) and its lease's removal ride
    out a Redis restart: before, the first ``exists`` during the outage raised
    ``ConnectionError`` out of the job, which ended ``failed INTERNAL``."""
    import redis

    from server.runners.celery_worker import _CancelPoll, _Lease

    with redis_server(tmp_path) as url:
        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        client.set("cancel:job", "1")
        poll, lease = _CancelPoll(client, "cancel:nothing"), _Lease(client, "lease:job", 60.0)
        assert poll() is False and client.exists("lease:job")
    # The server is gone now: the job is not canceled (last answer), and stopping works.
    poll._checked = 0.0  # ask now, not after the half second
    assert poll() is False
    lease.stop()
    flagged = _CancelPoll(client, "cancel:job")
    flagged._value = True  # a cancel seen before the outage stays seen
    assert flagged() is True
