"""The service end to end: a real uvicorn process on loopback, real ffmpeg and SQLite,
demo weights on the CPU."""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import httpx
import pytest

from latentsync_core.media.probe import probe
from tests.media_helpers import make_audio, make_clip, short_job_inputs
from tests.server_helpers import AUTH, ServerProcess


@pytest.fixture(scope="module")
def inputs(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("inputs")
    return {
        **short_job_inputs(media_dir, d),
        "long_video": make_clip(media_dir / "demo1_video.mp4", d / "long.mp4", 8.0),
        "silent_video": make_clip(media_dir / "demo1_video.mp4", d / "silent.mp4", 0.5, audio=False),
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, inputs: dict[str, Path]) -> ServerProcess:
    srv = ServerProcess(
        tmp_path_factory.mktemp("srv"),
        input_dirs=str(inputs["dir"]),
        max_upload_mb=3,
        max_video_s=5,
        webhook_allow_hosts="127.0.0.1",  # the webhook test's receiver is on loopback
    ).start()
    yield srv
    srv.stop()


def test_health_needs_no_key_and_ready_reports_the_models(server: ServerProcess) -> None:
    assert httpx.get(f"{server.base}/health").json() == {"status": "ok"}
    ready = server.client.get("/ready")
    assert ready.status_code == 200
    body = ready.json()
    assert body["state"] == "ready" and body["weights"] == "demo" and body["device"] == "cpu"
    assert "demo" in body["notice"]
    assert body["fast_path"] == "off"  # compile is for GPUs ("auto")


def test_second_job_on_the_same_video_uses_the_template_cache(
    server: ServerProcess, media_dir: Path, inputs: dict[str, Path], tmp_path: Path
) -> None:
    avatar = make_clip(media_dir / "demo1_video.mp4", tmp_path / "avatar.mp4", 1.2, start=5.0)
    other_speech = make_audio(media_dir / "demo1_audio.wav", tmp_path / "b.wav", 0.8, start=3.0)
    first = server.wait(server.post_files(avatar, inputs["audio"]).json()["id"], {"succeeded", "failed"})
    second = server.wait(server.post_files(avatar, other_speech).json()["id"], {"succeeded", "failed"})
    assert first["status"] == second["status"] == "succeeded", (first, second)
    key = first["result"]["template_cache"]["key"]
    assert first["result"]["template_cache"] == {"key": key, "used": False, "stored": True}
    assert second["result"]["template_cache"] == {"key": key, "used": True, "stored": False}
    row = json.loads(server.db_row(second["id"])["result_info"])  # the job record itself
    assert row["template_cache"]["used"] is True
    assert (server.data_dir / "cache" / "templates" / key / "moments.npy").is_file()


@pytest.mark.parametrize(
    ("headers", "code"), [({}, "MISSING_API_KEY"), ({"Authorization": "Bearer nope"}, "INVALID_API_KEY")]
)
def test_api_key_required(server: ServerProcess, headers: dict, code: str) -> None:
    for path in ("/ready", "/jobs", "/metrics", "/docs"):
        r = httpx.get(f"{server.base}{path}", headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == code


def test_happy_path(server: ServerProcess, inputs: dict[str, Path], tmp_path: Path) -> None:
    r = server.post_files(inputs["video"], inputs["audio"], seed=7)
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] == "queued" and r.headers["location"] == f"/jobs/{job['id']}"
    assert job["params"] == {"inference_steps": 2, "guidance_scale": 1.5, "seed": 7, "enable_deepcache": False}
    done = server.wait(job["id"], {"succeeded", "failed"})
    assert done["status"] == "succeeded", done
    assert done["progress"] == 1.0 and done["frames_done"] == done["frames_total"] == 27
    assert done["started_at"] <= done["finished_at"] and done["result"]["weights_kind"] == "demo"
    result = server.client.get(done["result_url"])
    assert result.status_code == 200 and result.headers["content-type"] == "video/mp4"
    out = tmp_path / "r.mp4"
    out.write_bytes(result.content)
    info = probe(out)
    assert info.has_video and info.has_audio and abs(info.duration - 1.0) < 0.1
    part = server.client.get(done["result_url"], headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == result.content[:100]
    listed = server.client.get("/jobs", params={"status": "succeeded", "limit": 1}).json()
    assert listed["total"] >= 1 and len(listed["jobs"]) == 1 and listed["jobs"][0]["status"] == "succeeded"
    metrics = server.client.get("/metrics").text
    assert 'latentsync_jobs_finished_total{status="succeeded"}' in metrics
    assert "latentsync_stage_seconds_bucket" in metrics
    # Every output is scored (demo mode: a random SyncNet, and the record says so).
    sync = done["result"]["sync"]
    assert sync["weights"] == "demo" and sync["offset_ms"] == 40 * sync["offset_frames"] and sync["frames_scored"] >= 6
    assert {"lse_c", "lse_d", "per_second_confidence"} <= set(sync) and done["result"]["timings"]["sync"] >= 0
    scored = [line for line in metrics.splitlines() if line.startswith("latentsync_output_lse_c_count")]
    assert scored and float(scored[0].split()[-1]) >= 1


def test_five_jobs_at_once_all_succeed_one_at_a_time(server: ServerProcess, inputs: dict[str, Path]) -> None:
    with ThreadPoolExecutor(5) as pool:
        responses = list(pool.map(lambda _: server.post_files(inputs["video"], inputs["audio"]), range(5)))
    assert [r.status_code for r in responses] == [202] * 5
    ids = [r.json()["id"] for r in responses]
    positions = [server.client.get(f"/jobs/{i}").json()["queue_position"] for i in ids]
    assert sorted(p for p in positions if p is not None) == list(range(1, 1 + sum(p is not None for p in positions)))
    jobs = [server.wait(i, {"succeeded", "failed"}) for i in ids]
    assert all(j["status"] == "succeeded" for j in jobs)
    spans = sorted((j["started_at"], j["finished_at"]) for j in jobs)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False)), "two jobs ran at the same time"


def _files_left(folder: str) -> list[str]:
    return sorted(p.name for p in Path(folder).iterdir())


def test_cancel_running_and_queued_jobs(server: ServerProcess, inputs: dict[str, Path]) -> None:
    first = server.post_files(inputs["video"], inputs["audio"], inference_steps=40).json()
    second = server.post_files(inputs["video"], inputs["audio"]).json()
    server.wait(first["id"], {"running"})
    r = server.client.delete(f"/jobs/{second['id']}")
    assert r.status_code == 200 and r.json()["status"] == "canceled"
    assert _files_left(server.db_row(second["id"])["work_dir"]) == ["job.json"]  # only its record
    r = server.client.delete(f"/jobs/{first['id']}")
    assert r.status_code == 202 and r.json()["status"] == "canceling"
    canceled = server.wait(first["id"], {"canceled", "succeeded", "failed"}, timeout=60)
    assert canceled["status"] == "canceled" and canceled["error"]["code"] == "CANCELED"
    assert _files_left(server.db_row(first["id"])["work_dir"]) == ["job.json"]  # only its record
    assert server.client.get(f"/jobs/{first['id']}/result").json()["error"]["code"] == "NOT_READY"
    assert server.client.delete(f"/jobs/{first['id']}").status_code == 204
    assert server.client.get(f"/jobs/{first['id']}").status_code == 404
    # The worker carries on.
    after = server.post_files(inputs["video"], inputs["audio"]).json()
    assert server.wait(after["id"], {"succeeded", "failed"})["status"] == "succeeded"


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_bad_inputs_get_clear_errors_and_the_service_carries_on(
    server: ServerProcess, inputs: dict[str, Path], tmp_path: Path, media_dir: Path
) -> None:
    text = _write(tmp_path / "notes.mp4", b"this is not a video at all")
    empty = _write(tmp_path / "empty.mp4", b"")
    big = _write(tmp_path / "big.mp4", os.urandom(4 * 1024 * 1024))
    cases = [
        (text, inputs["audio"], 400, "INVALID_MEDIA"),
        (inputs["audio"], inputs["audio"], 400, "NO_VIDEO_STREAM"),
        (inputs["video"], inputs["silent_video"], 400, "NO_AUDIO_STREAM"),
        (empty, inputs["audio"], 400, "EMPTY_FILE"),
        (inputs["video"], empty, 400, "EMPTY_FILE"),
        (big, inputs["audio"], 413, "PAYLOAD_TOO_LARGE"),
        (inputs["long_video"], inputs["audio"], 400, "VIDEO_TOO_LONG"),
    ]
    good = server.post_files(inputs["video"], inputs["audio"]).json()  # must survive all of this
    for video, audio, status, code in cases:
        r = server.post_files(video, audio)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), (video.name, r.text)
        assert r.json()["error"]["message"]
    r = server.post_files(inputs["video"], inputs["audio"], inference_steps=0)
    assert r.status_code == 422 and r.json()["error"]["code"] == "INVALID_PARAMETER"
    r = server.client.post("/lipsync", files={"video": ("v.mp4", inputs["video"].read_bytes())})
    assert r.status_code == 400 and r.json()["error"]["code"] == "MISSING_FILE"
    assert server.client.get("/jobs/doesnotexist").json()["error"]["code"] == "JOB_NOT_FOUND"
    assert server.client.get("/jobs", params={"status": "bogus"}).status_code == 400
    assert server.wait(good["id"], {"succeeded", "failed"})["status"] == "succeeded"
    assert httpx.get(f"{server.base}/health").status_code == 200
    leftovers = [p for p in (server.data_dir / "jobs").iterdir() if not server.client.get(f"/jobs/{p.name}").is_success]
    assert leftovers == [], "rejected uploads left files behind"


def test_json_paths_must_stay_inside_the_input_folders(
    server: ServerProcess, inputs: dict[str, Path], tmp_path: Path
) -> None:
    ok = server.client.post("/lipsync", json={"video_path": str(inputs["video"]), "audio_path": str(inputs["audio"])})
    assert ok.status_code == 202, ok.text
    escape = inputs["dir"] / ".." / ".." / "etc" / "passwd"
    link = inputs["dir"] / "sneaky.mp4"
    link.symlink_to(tmp_path / "outside.mp4")
    _write(tmp_path / "outside.mp4", inputs["video"].read_bytes())
    for video in (str(escape), "/etc/passwd", str(link)):
        r = server.client.post("/lipsync", json={"video_path": video, "audio_path": str(inputs["audio"])})
        assert r.status_code == 403 and r.json()["error"]["code"] == "PATH_NOT_ALLOWED", video
    r = server.client.post("/lipsync", json={"video_path": str(inputs["video"])})
    assert r.status_code == 422
    assert server.wait(ok.json()["id"], {"succeeded", "failed"})["status"] == "succeeded"


def test_webhook_is_called_when_a_job_ends(server: ServerProcess, inputs: dict[str, Path]) -> None:
    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    hook = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{hook.server_address[1]}/done"
        job = server.post_files(inputs["video"], inputs["audio"], webhook_url=url).json()
        server.wait(job["id"], {"succeeded", "failed"})
        for _ in range(50):
            if received:
                break
            threading.Event().wait(0.1)
        assert received and received[0]["job"]["id"] == job["id"] and received[0]["job"]["status"] == "succeeded"
    finally:
        hook.shutdown()


@pytest.fixture()
def fragile_server(tmp_path: Path) -> ServerProcess:
    srv = ServerProcess(tmp_path / "srv", max_queue=2, result_ttl_s=2, cleanup_interval_s=0.5)
    yield srv
    srv.stop()


def test_restart_recovery_runs_again_once_then_interrupted(
    fragile_server: ServerProcess, inputs: dict[str, Path]
) -> None:
    srv = fragile_server.start()
    slow = srv.post_files(inputs["video"], inputs["audio"], inference_steps=60).json()
    srv.wait(slow["id"], {"running"})
    srv.kill()
    srv.start()
    job = srv.wait(slow["id"], {"running", "succeeded", "failed"})
    assert job["attempts"] == 2 and job["status"] == "running"
    srv.kill()
    srv.start()
    job = srv.client.get(f"/jobs/{slow['id']}").json()
    assert job["status"] == "failed" and job["error"]["code"] == "INTERRUPTED"
    # A job interrupted once finishes after the restart.
    once = srv.post_files(inputs["video"], inputs["audio"], inference_steps=20).json()
    srv.wait(once["id"], {"running"})
    srv.kill()
    srv.start()
    job = srv.wait(once["id"], {"succeeded", "failed"})
    assert job["status"] == "succeeded" and job["attempts"] == 2


def test_sigterm_requeues_the_running_job_and_queue_limit(
    fragile_server: ServerProcess, inputs: dict[str, Path]
) -> None:
    srv = fragile_server.start()
    running = srv.post_files(inputs["video"], inputs["audio"], inference_steps=60).json()
    srv.wait(running["id"], {"running"})
    queued = [srv.post_files(inputs["video"], inputs["audio"]) for _ in range(2)]
    assert all(r.status_code == 202 for r in queued)
    full = srv.post_files(inputs["video"], inputs["audio"])
    assert full.status_code == 429 and full.json()["error"]["code"] == "QUEUE_FULL"
    assert int(full.headers["retry-after"]) > 0
    # uvicorn shuts down gracefully, then re-raises SIGTERM: the exit status is -15.
    assert srv.terminate() in (0, -15)
    assert "re-queued at shutdown" in (srv.data_dir / "server.log").read_text()
    row = srv.db_row(running["id"])
    assert row["status"] == "queued" and row["attempts"] == 0
    srv.start()
    for job_id in [running["id"]] + [r.json()["id"] for r in queued]:
        srv.client.delete(f"/jobs/{job_id}")
    # Results expire after the retention time.
    quick = srv.post_files(inputs["video"], inputs["audio"]).json()
    done = srv.wait(quick["id"], {"succeeded", "failed"})
    assert done["status"] == "succeeded"
    expired = None
    for _ in range(40):
        expired = srv.client.get(done["result_url"])
        if expired.status_code == 410:
            break
        threading.Event().wait(0.25)
    assert expired.status_code == 410 and expired.json()["error"]["code"] == "RESULT_EXPIRED"


def test_openapi_docs(server: ServerProcess) -> None:
    spec = server.client.get("/openapi.json").json()
    assert {"/lipsync", "/jobs/{job_id}", "/jobs/{job_id}/result", "/health", "/ready", "/metrics"} <= set(
        spec["paths"]
    )
    assert server.client.get("/docs").status_code == 200
    assert httpx.get(f"{server.base}/docs").status_code == 401  # docs sit behind the key too
    _ = AUTH


def test_polls_stay_fast_while_a_slow_probe_runs(tmp_path: Path, inputs: dict[str, Path]) -> None:
    """Probing an upload may take seconds (ffprobe's own timeout is 30 s); it runs off the
    event loop, so polls meanwhile answer at once. The probe here is the real one, behind a
    wrapper that waits before starting it."""
    from latentsync_core.media.ffmpeg_bin import ffmpeg_exe, ffprobe_exe

    delay = 4.0
    started = tmp_path / "probe-started"
    real, setting = (ffprobe_exe(), "ffprobe") if ffprobe_exe() else (ffmpeg_exe(), "ffmpeg")
    wrapper = tmp_path / f"slow-{setting}"
    wrapper.write_text(f'#!/bin/sh\ntouch "{started}"\nsleep {delay}\nexec "{real}" "$@"\n')
    wrapper.chmod(0o755)
    srv = ServerProcess(tmp_path / "srv", **{setting: str(wrapper)}).start()
    try:
        with ThreadPoolExecutor(1) as pool:
            upload = pool.submit(srv.post_files, inputs["video"], inputs["audio"])
            deadline = time.monotonic() + 30
            while not started.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert started.exists(), "the probe never started"
            slowest = 0.0
            for _ in range(10):
                t0 = time.monotonic()
                assert srv.client.get("/jobs").status_code == 200
                slowest = max(slowest, time.monotonic() - t0)
            assert not upload.done(), "the probe ended before the polls: the check proves nothing"
            assert upload.result().status_code == 202
        assert slowest < delay / 2, f"a poll waited {slowest:.2f} s behind the probe"
    finally:
        srv.stop()
