"""Small contract gaps (issue 22 item 7), on a real service: Range errors are the JSON error,
``HEAD`` of a result works, a FIFO or a folder named as an input is ``INPUT_NOT_REGULAR``, a
job that ends keeps only its result, and upload checks run a bounded number of probe
children at once."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from latentsync_core.media.ffmpeg_bin import run_ffmpeg
from server.jobs.folder import JobFolder
from tests.media_helpers import short_job_inputs
from tests.redis_helpers import redis_server
from tests.server_helpers import ServerProcess

BURST = 6


@pytest.fixture(scope="module")
def inputs(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    found = short_job_inputs(media_dir, tmp_path_factory.mktemp("gaps_inputs"))
    noface = found["dir"] / "testsrc.mp4"  # colour bars: the job fails NO_FACE
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "1", "-pix_fmt", "yuv420p", str(noface)])
    return {**found, "noface": noface}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, inputs: dict[str, Path]) -> ServerProcess:
    server = ServerProcess(tmp_path_factory.mktemp("gaps"), input_dirs=str(inputs["dir"])).start()
    yield server
    server.stop()


def _folder(srv: ServerProcess, job_id: str) -> set[str]:
    path = srv.data_dir / "jobs" / job_id
    return {p.name for p in path.iterdir()} if path.exists() else set()


def test_a_fifo_or_a_folder_inside_an_input_folder_is_input_not_regular(
    srv: ServerProcess, inputs: dict[str, Path]
) -> None:
    fifo, folder = inputs["dir"] / "pipe.mp4", inputs["dir"] / "folder.mp4"
    os.mkfifo(fifo)
    folder.mkdir()
    try:
        for odd in (fifo, folder):
            r = srv.client.post("/lipsync", json={"video_path": str(odd), "audio_path": str(inputs["audio"])})
            assert (r.status_code, r.json()["error"]["code"]) == (400, "INPUT_NOT_REGULAR"), r.text
        missing = inputs["dir"] / "missing.mp4"
        r = srv.client.post("/lipsync", json={"video_path": str(missing), "audio_path": str(inputs["audio"])})
        assert (r.status_code, r.json()["error"]["code"]) == (400, "FILE_NOT_FOUND"), r.text
    finally:
        fifo.unlink()
        folder.rmdir()


@pytest.fixture(scope="module")
def succeeded(srv: ServerProcess, inputs: dict[str, Path]) -> str:
    """A job that succeeded: its id (its uploads were seen in its folder while it waited)."""
    job = srv.post_files(inputs["video"], inputs["audio"]).json()
    assert any(name.startswith("input_") for name in _folder(srv, job["id"]))
    assert srv.wait(job["id"], {"succeeded", "failed"})["status"] == "succeeded"
    return job["id"]


def test_a_succeeded_job_keeps_only_its_result(srv: ServerProcess, succeeded: str) -> None:
    # The uploads, the scratch space and the live stream are gone; the record stays for rebuilds.
    assert _folder(srv, succeeded) == {"result.mp4", "job.json"}


def test_head_of_a_result_gives_its_headers_and_no_body(srv: ServerProcess, succeeded: str) -> None:
    size = (srv.data_dir / "jobs" / succeeded / "result.mp4").stat().st_size
    head = srv.client.head(f"/jobs/{succeeded}/result")
    assert head.status_code == 200 and head.content == b"", head.status_code
    assert int(head.headers["content-length"]) == size and head.headers["content-type"] == "video/mp4"
    assert "etag" in head.headers and head.headers["accept-ranges"] == "bytes"
    assert srv.client.head("/jobs/nope/result").status_code == 404


def test_range_errors_are_416_json_with_a_code(srv: ServerProcess, succeeded: str) -> None:
    url = f"/jobs/{succeeded}/result"
    size = (srv.data_dir / "jobs" / succeeded / "result.mp4").stat().st_size
    invalid = [("bytes=10-5", "INVALID_RANGE"), ("bytes=abc", "INVALID_RANGE")]
    for bad, code in [*invalid, (f"bytes={size}-", "RANGE_NOT_SATISFIABLE"), ("bytes=-0", "RANGE_NOT_SATISFIABLE")]:
        r = srv.client.get(url, headers={"Range": bad})
        assert r.status_code == 416 and r.headers["content-type"] == "application/json", (bad, r.text)
        assert r.json()["error"]["code"] == code and r.headers["content-range"] == f"bytes */{size}", bad
    part = srv.client.get(url, headers={"Range": "bytes=4-11"})
    assert part.status_code == 206 and len(part.content) == 8 and part.content[:4] == b"ftyp", part.content


def test_a_failed_job_keeps_no_uploads(srv: ServerProcess, inputs: dict[str, Path]) -> None:
    job = srv.post_files(inputs["noface"], inputs["audio"]).json()
    ended = srv.wait(job["id"], {"succeeded", "failed"})
    assert ended["status"] == "failed" and ended["error"]["code"] == "NO_FACE", ended
    assert _folder(srv, job["id"]) == {"job.json"}  # nothing to keep but the record: no result
    srv.client.delete(f"/jobs/{job['id']}")


class ProbeWatch(threading.Thread):
    """How many probe children (ffprobe, or ffmpeg reading a header) the service runs at once,
    sampled from /proc. The service runs no job (cluster mode without workers): every ffmpeg
    child is a probe."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.halt, self.most, self.samples = pid, threading.Event(), 0, 0

    def _children(self) -> list[str]:
        pids: list[str] = []
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            try:
                pids += (task / "children").read_text().split()
            except OSError:  # the thread ended meanwhile
                continue
        return pids

    def run(self) -> None:
        while not self.halt.is_set():
            probes = 0
            for child in self._children():
                try:
                    cmd = Path(f"/proc/{child}/cmdline").read_bytes()
                except OSError:  # it ended meanwhile
                    continue
                probes += b"ffprobe" in cmd or b"ffmpeg" in cmd
            self.most, self.samples = max(self.most, probes), self.samples + 1
            time.sleep(0.001)


def test_a_burst_of_uploads_runs_at_most_max_concurrent_probes_children(
    tmp_path: Path, inputs: dict[str, Path]
) -> None:
    with redis_server(tmp_path) as url:
        api = ServerProcess(tmp_path / "api", broker_url=url, max_concurrent_probes=1, max_queue=BURST + 2).start()
        watch = ProbeWatch(api.proc.pid)
        watch.start()
        try:
            with ThreadPoolExecutor(BURST) as pool:
                answers = list(pool.map(lambda _: api.post_files(inputs["video"], inputs["audio"]), range(BURST)))
        finally:
            watch.halt.set()
            watch.join()
            api.stop()
    assert [a.status_code for a in answers] == [202] * BURST, [a.text for a in answers]
    assert watch.samples > 100 and watch.most == 1, (watch.most, watch.samples)  # MAX_CONCURRENT_PROBES=1


def test_removing_a_folders_inputs_keeps_the_result_and_never_follows_a_link(tmp_path: Path) -> None:
    outside = tmp_path / "theirs.mp4"  # a path input, or what a planted link points at
    outside.write_bytes(b"keep me")
    folder = JobFolder(tmp_path / "job")
    folder.create()
    (folder.path / "input_video.mp4").write_bytes(b"v")
    (folder.path / "input_audio").symlink_to(outside)
    folder.tmp.mkdir()
    (folder.tmp / "frame.png").write_bytes(b"f")
    folder.result.write_bytes(b"result")
    folder.remove_inputs()
    assert {p.name for p in folder.path.iterdir()} == {"result.mp4"}
    assert outside.read_bytes() == b"keep me"
