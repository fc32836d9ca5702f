"""Issue 22 item 3: leftovers after kill -9. A real service is killed during a job's denoise
(the template cache's staging folder is being written then); the restart's sweep removes it
and every other partial file the service writes (records and compile artifacts being
written, a database being rebuilt, folders of uploads cut short), before it takes work."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.media_helpers import short_job_inputs
from tests.server_helpers import ServerProcess


@pytest.fixture(scope="module")
def inputs(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return short_job_inputs(media_dir, tmp_path_factory.mktemp("inputs"))


def _partials(data: Path) -> list[Path]:
    return sorted(p for p in data.rglob("*") if p.name.startswith(".staging-") or ".part-" in p.name)


def test_kill_during_denoise_then_restart_leaves_no_partial_file(tmp_path: Path, inputs: dict[str, Path]) -> None:
    srv = ServerProcess(tmp_path / "srv").start()
    data = srv.data_dir
    try:
        job_id = srv.post_files(inputs["video"], inputs["audio"], inference_steps=200).json()["id"]
        deadline = time.time() + 120
        while srv.client.get(f"/jobs/{job_id}").json()["stage"] != "denoise":
            assert time.time() < deadline, "the job never reached denoise"
            time.sleep(0.1)
        staging = list((data / "cache" / "templates").glob(".staging-*"))
        assert staging, "the template cache writes its entry while the job denoises"
    finally:
        srv.kill()  # kill -9: nothing is cleaned up
    job_folder = data / "jobs" / job_id
    planted = [
        job_folder / "job.part-4242-abcdef.json",  # a record being written
        data / "cache" / "compile-artifacts" / ".part-x1y2z3",  # compile artifacts being saved
        data / "jobs.part-4242-abcdef.sqlite3",  # a database being rebuilt
    ]
    for path in planted:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")
    orphan = data / "jobs" / ("e" * 32)  # an upload cut short: no record
    orphan.mkdir()
    (orphan / "input_video.mp4").write_bytes(b"partial")
    assert set(staging + planted) <= set(_partials(data))
    srv.start()
    try:
        assert not any(p.exists() for p in [*staging, *planted, orphan])
        job = srv.client.get(f"/jobs/{job_id}").json()
        assert job["status"] in {"queued", "running"} and (job_folder / "job.json").is_file()  # the job lives on
        assert srv.client.delete(f"/jobs/{job_id}").status_code in (200, 202)
        assert srv.wait(job_id, {"canceled", "succeeded", "failed"})["status"] == "canceled"
        assert _partials(data) == []
        assert sorted(p.name for p in job_folder.iterdir()) == ["job.json"]  # only the record of a canceled job
    finally:
        srv.stop()
