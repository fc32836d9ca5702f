"""The Python client (latentsync_client) against a real service process in demo mode on
loopback; 429s and broken downloads come from a real scripted proxy in front of it."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from latentsync_client import (
    AsyncClient,
    AuthenticationError,
    BadRequest,
    Client,
    Conflict,
    NotFound,
    RateLimited,
    RetryPolicy,
)
from tests.client_helpers import ScriptedProxy
from tests.media_helpers import short_job_inputs
from tests.server_helpers import KEY, ServerProcess

ROOT = Path(__file__).resolve().parent.parent
FAST_RETRY = RetryPolicy(retries=3, backoff_s=0.05, max_backoff_s=0.2, max_retry_after_s=5)


@pytest.fixture(scope="module")
def inputs(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return short_job_inputs(media_dir, tmp_path_factory.mktemp("client_inputs"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    srv = ServerProcess(tmp_path_factory.mktemp("client_srv"), max_upload_mb=3, max_video_s=5).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def finished(server: ServerProcess, inputs: dict[str, Path]) -> dict:
    """One succeeded job (submitted by the client) and the bytes the service serves for it."""
    with Client(server.base, api_key=KEY) as client:
        job = client.wait(client.submit(inputs["video"], inputs["audio"], seed=7), timeout=240)
    assert job.succeeded, job
    served = server.client.get(f"/jobs/{job.id}/result")
    assert served.status_code == 200
    return {"job": job, "bytes": served.content}


def test_submit_wait_result_equals_what_the_service_serves(
    server: ServerProcess, finished: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    job = finished["job"]
    assert job.status == "succeeded" and job.params["seed"] == 7 and job.params["inference_steps"] == 2
    assert job.progress == 1.0 and job.frames_done == job.frames_total == 27 and job.error is None
    assert job.result_url == f"/jobs/{job.id}/result" and job.result["weights_kind"] == "demo"
    with Client(server.base, api_key=KEY) as client:
        again = client.wait(job.id, timeout=5, progress=True)  # already finished: one poll, a bar drawn
        out = client.result(again, tmp_path / "out.mp4")
        listed = client.jobs(status="succeeded", limit=500)
    assert out.read_bytes() == finished["bytes"] and [p.name for p in tmp_path.iterdir()] == ["out.mp4"]
    assert "succeeded" in capsys.readouterr().err
    assert job.id in {j.id for j in listed.jobs} and listed.total >= 1 and listed.limit == 500


def test_a_partial_download_on_disk_continues_with_range(server: ServerProcess, finished: dict, tmp_path: Path) -> None:
    whole = finished["bytes"]
    dest = tmp_path / "resumed.mp4"
    (tmp_path / f"resumed.mp4.{finished['job'].id}.part").write_bytes(whole[: len(whole) // 3])
    (tmp_path / "resumed.mp4.0123456789abcdef0123456789abcdef.part").write_bytes(b"another job's bytes")
    with ScriptedProxy(server.base) as proxy, Client(proxy.base, api_key=KEY) as client:
        client.result(finished["job"], dest)
    assert dest.read_bytes() == whole
    [get] = proxy.requests("GET", f"/jobs/{finished['job'].id}/result")
    assert get.headers["range"] == f"bytes={len(whole) // 3}-" and get.answered == 206


def test_a_download_cut_off_midway_resumes_where_it_stopped(
    server: ServerProcess, finished: dict, tmp_path: Path
) -> None:
    whole = finished["bytes"]
    url = f"/jobs/{finished['job'].id}/result"
    with ScriptedProxy(server.base) as proxy, Client(proxy.base, api_key=KEY, retry=FAST_RETRY) as client:
        proxy.script.matches = lambda method, path: path == url
        proxy.script.cut_after = 1000
        client.result(finished["job"], tmp_path / "cut.mp4")
    assert (tmp_path / "cut.mp4").read_bytes() == whole
    first, second = proxy.requests("GET", url)
    assert "range" not in first.headers and second.headers["range"] == "bytes=1000-" and second.answered == 206


def test_a_complete_part_file_is_finished_without_a_body(server: ServerProcess, finished: dict, tmp_path: Path) -> None:
    """The whole file already in the part file: the service answers 416 with the size, which agrees."""
    (tmp_path / f"full.mp4.{finished['job'].id}.part").write_bytes(finished["bytes"])
    with Client(server.base, api_key=KEY) as client:
        client.result(finished["job"], tmp_path / "full.mp4")
    assert (tmp_path / "full.mp4").read_bytes() == finished["bytes"]


def test_429_is_retried_after_retry_after_with_the_same_idempotency_key(
    server: ServerProcess, inputs: dict[str, Path]
) -> None:
    with ScriptedProxy(server.base) as proxy, Client(proxy.base, api_key=KEY, retry=FAST_RETRY) as client:
        proxy.script.matches = lambda method, path: (method, path) == ("POST", "/lipsync")
        proxy.script.throttle = {0: "1"}
        with open(inputs["video"], "rb") as video:  # a file object: rewound for the retry
            job = client.submit(video, inputs["audio"])
    first, second = proxy.requests("POST", "/lipsync")
    assert (first.answered, second.answered) == (429, 202) and job.status == "queued"
    assert second.at - first.at >= 1.0  # Retry-After: 1 s, not the 0.05 s backoff
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
    assert re.fullmatch(r"[0-9a-f]{32}", first.headers["idempotency-key"])
    assert first.body == second.body and inputs["video"].read_bytes() in first.body  # byte for byte
    with Client(server.base, api_key=KEY) as client:
        client.delete(job, timeout=240)  # canceled (or stopped at its next window), then removed


def test_429_beyond_the_retries_or_a_long_retry_after_raises_queue_full(
    server: ServerProcess, inputs: dict[str, Path]
) -> None:
    with ScriptedProxy(server.base) as proxy, Client(proxy.base, api_key=KEY, retry=FAST_RETRY) as client:
        proxy.script.matches = lambda method, path: (method, path) == ("POST", "/lipsync")
        proxy.script.throttle = {0: "0", 1: "0", 2: "0", 3: "0", 4: "3600"}
        with pytest.raises(RateLimited) as spent:
            client.submit(inputs["video"], inputs["audio"])
        assert spent.value.code == "QUEUE_FULL" and spent.value.status == 429
        assert len(proxy.requests("POST", "/lipsync")) == 1 + FAST_RETRY.retries
        with pytest.raises(RateLimited) as long_wait:  # one hour is not waited for: raised at once
            client.submit(inputs["video"], inputs["audio"])
        assert long_wait.value.headers["retry-after"] == "3600"
        assert len(proxy.requests("POST", "/lipsync")) == 2 + FAST_RETRY.retries


def test_coded_errors_surface_as_exceptions_with_the_api_code(
    server: ServerProcess, inputs: dict[str, Path], tmp_path: Path
) -> None:
    not_media = tmp_path / "notes.mp4"
    not_media.write_bytes(b"this is not a video at all" * 100)
    with ScriptedProxy(server.base) as proxy, Client(proxy.base, api_key=KEY, retry=FAST_RETRY) as client:
        with pytest.raises(NotFound) as missing:
            client.get("0" * 32)
        assert (missing.value.code, missing.value.status) == ("JOB_NOT_FOUND", 404)
        with pytest.raises(BadRequest) as bad_media:
            client.submit(not_media, inputs["audio"])
        assert bad_media.value.status == 400 and bad_media.value.code.startswith("INVALID_")
        with pytest.raises(BadRequest) as bad_param:
            client.submit(inputs["video"], inputs["audio"], inference_steps=0)
        assert (bad_param.value.code, bad_param.value.status) == ("INVALID_PARAMETER", 422)
        assert len(proxy.requests("POST", "/lipsync")) == 2  # 4xx other than 429: never retried
    with Client(server.base, api_key="wrong") as client, pytest.raises(AuthenticationError) as denied:
        client.jobs()
    assert (denied.value.code, denied.value.status) == ("INVALID_API_KEY", 401)


def test_cancel_a_queued_job_and_delete_jobs(server: ServerProcess, inputs: dict[str, Path], tmp_path: Path) -> None:
    with Client(server.base, api_key=KEY) as client:
        first, second = (client.submit(inputs["video"], inputs["audio"]) for _ in range(2))
        canceled = client.cancel(second)  # behind the first: still queued
        assert canceled.status == "canceled" and client.get(second).status == "canceled"
        assert client.cancel(second).status == "canceled"  # a finished job is left as it is
        with pytest.raises(Conflict) as early:
            client.result(second, tmp_path / "never.mp4")
        assert early.value.code == "NOT_READY" and not list(tmp_path.iterdir())
        for job in (second, first):  # the first is queued or running: canceled, then removed
            client.delete(job, timeout=240)
            with pytest.raises(NotFound):
                client.get(job)


def test_async_client_does_the_same(
    server: ServerProcess, inputs: dict[str, Path], finished: dict, tmp_path: Path
) -> None:
    async def scenario() -> None:
        with ScriptedProxy(server.base) as proxy:
            async with AsyncClient(proxy.base, api_key=KEY, retry=FAST_RETRY) as client:
                proxy.script.matches = lambda method, path: (method, path) == ("POST", "/lipsync")
                proxy.script.throttle = {0: "1"}
                job = await client.submit(inputs["video"], inputs["audio"], seed=7)
                first, second = proxy.requests("POST", "/lipsync")
                assert (first.answered, second.answered) == (429, 202) and second.at - first.at >= 1.0
                assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
                done = await client.wait(job, timeout=240, progress=True)
                assert done.succeeded and done.params["seed"] == 7
                whole = server.client.get(f"/jobs/{done.id}/result").content
                assert whole == finished["bytes"]  # same inputs and seed: the same video
                url = f"/jobs/{done.id}/result"
                proxy.script.matches = lambda method, path: path == url
                proxy.script.cut_after = 1500
                out = await client.result(done, tmp_path / "async.mp4")
                assert out.read_bytes() == whole
                assert proxy.requests("GET", url)[-1].headers["range"] == "bytes=1500-"
                with pytest.raises(NotFound) as missing:
                    await client.get("f" * 32)
                assert missing.value.code == "JOB_NOT_FOUND"
                assert done.id in {j.id for j in (await client.jobs(limit=500)).jobs}

    asyncio.run(scenario())


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "latentsync_client", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_command_line_submit_wait_output_jobs_result_cancel(
    server: ServerProcess, inputs: dict[str, Path], finished: dict, tmp_path: Path
) -> None:
    conn = ["--server", server.base, "--api-key", KEY]
    out = tmp_path / "cli" / "out.mp4"
    run = _cli("submit", str(inputs["video"]), str(inputs["audio"]), *conn, "--seed", "7", "--output", str(out))
    assert run.returncode == 0, run.stderr
    job_id = run.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{32}", job_id) and "%|" in run.stderr and f"wrote {out}" in run.stderr
    assert out.read_bytes() == finished["bytes"]

    listed = _cli("jobs", *conn, "--status", "succeeded", "--limit", "500", "--json")
    assert listed.returncode == 0 and job_id in {j["id"] for j in json.loads(listed.stdout)["jobs"]}
    assert job_id in _cli("jobs", *conn).stdout

    again = _cli("result", job_id, str(tmp_path / "again.mp4"), *conn)
    assert again.returncode == 0 and (tmp_path / "again.mp4").read_bytes() == finished["bytes"]

    done = _cli("cancel", job_id, *conn)
    assert done.returncode == 0 and "already succeeded" in done.stdout

    with Client(server.base, api_key=KEY) as client:
        running = client.submit(inputs["video"], inputs["audio"])
        queued = _cli("submit", str(inputs["video"]), str(inputs["audio"]), *conn).stdout.strip()
        canceled = _cli("cancel", queued, *conn, "--json")
        assert canceled.returncode == 0 and json.loads(canceled.stdout)["status"] == "canceled"
        waited = _cli("submit", str(inputs["video"]), str(inputs["audio"]), *conn, "--wait", "--timeout", "0.01")
        assert waited.returncode == 4 and "error [WAIT_TIMEOUT]" in waited.stderr
        timed_out = re.search(r"submitted job ([0-9a-f]{32})", waited.stderr).group(1)
        assert client.get(timed_out).status in ("queued", "running")  # it goes on
        for job in (timed_out, running, queued):
            client.delete(job, timeout=240)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["cancel", "0" * 32], "JOB_NOT_FOUND"),
        (["result", "0" * 32, "never.mp4"], "JOB_NOT_FOUND"),
        (["jobs", "--api-key", "wrong"], "INVALID_API_KEY"),
        (["jobs", "--status", "sleeping"], "INVALID_PARAMETER"),
    ],
)
def test_command_line_errors_are_coded_lines_with_status_2(server: ServerProcess, args: list[str], code: str) -> None:
    if "--api-key" not in args:
        args = [*args, "--api-key", KEY]
    run = _cli(*args, "--server", server.base)
    assert run.returncode == 2 and f"error [{code}]:" in run.stderr, run.stderr


def test_command_line_without_a_service_or_a_file(tmp_path: Path) -> None:
    missing = _cli("submit", str(tmp_path / "no.mp4"), str(tmp_path / "no.wav"), "--server", "http://127.0.0.1:9")
    assert missing.returncode == 2 and "error [FILE_NOT_FOUND]" in missing.stderr
    start = time.monotonic()
    down = _cli("jobs", "--server", "http://127.0.0.1:9")  # the discard port: nothing listens
    assert down.returncode == 2 and "error [CONNECTION_ERROR]" in down.stderr
    assert time.monotonic() - start < 60  # bounded retries, then the error


def test_latentsync_runs_the_client_commands_with_the_server_and_key_from_dotenv(
    server: ServerProcess, finished: dict, tmp_path: Path
) -> None:
    """``latentsync jobs`` (the service's own command) is the client's, and like every
    command it reads its settings from ``.env`` in the folder it runs in when neither a flag
    nor the environment gives them."""
    (tmp_path / ".env").write_text(f"LATENTSYNC_SERVER={server.base}\nLATENTSYNC_API_KEY={KEY}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("LATENTSYNC_SERVER", "LATENTSYNC_API_KEY")}
    listed = subprocess.run([sys.executable, "-m", "server.cli", "jobs", "--json", "--limit", "500"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert finished["job"].id in {j["id"] for j in json.loads(listed.stdout)["jobs"]}
    wrong = subprocess.run([sys.executable, "-m", "server.cli", "jobs", "--api-key", "wrong"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert wrong.returncode == 2 and "error [INVALID_API_KEY]" in wrong.stderr  # a flag beats .env
