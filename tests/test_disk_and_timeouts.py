"""A full disk and slow clients (issue 16 items 4 and 10): a real service on a real small
filesystem (a private tmpfs, ``tests/small_disk.py``) that fills up, and real sockets."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from server.client_util import ROOT
from tests import small_disk
from tests.media_helpers import short_job_inputs
from tests.server_helpers import KEY, ServerProcess

MB = 1 << 20
DISK_MB = 48  # the demo weights (~15 MB) and a short job (~20 MB at peak) fit
MIN_FREE_MB = 4
BODY_TIMEOUT_S = 3


@pytest.fixture(scope="module")
def inputs(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return short_job_inputs(media_dir, tmp_path_factory.mktemp("inputs"))


class SmallDiskServer(ServerProcess):
    """The service with its data folder on a tmpfs of ``DISK_MB`` of its own."""

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / "server.log"  # the data folder is the small disk's

    def wrap(self, argv: list[str]) -> list[str]:
        return small_disk.command(self.data_dir, DISK_MB * MB, argv)

    @property
    def disk(self) -> Path:
        """The data folder as the service sees it (its own mount namespace)."""
        return Path(f"/proc/{self.proc.pid}/root") / str(self.data_dir).lstrip("/")

    def free_mb(self) -> float:
        st = os.statvfs(self.disk)
        return st.f_bavail * st.f_frsize / MB


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory, inputs: dict[str, Path]) -> SmallDiskServer:
    srv = SmallDiskServer(tmp_path_factory.mktemp("small") / "data", min_free_mb=MIN_FREE_MB,
                          input_dirs=str(inputs["dir"]), max_queue=1, body_timeout_s=BODY_TIMEOUT_S)  # fmt: skip
    srv.start()
    yield srv
    srv.stop()


def _alive(srv: ServerProcess) -> None:
    assert srv.proc.poll() is None, "the service died"
    assert srv.client.get("/health").status_code == 200


def _job_folders(srv: SmallDiskServer) -> set[str]:
    return {p.name for p in (srv.disk / "jobs").iterdir()}


def test_ready_and_admission_refuse_work_while_the_data_folder_is_nearly_full(
    small: SmallDiskServer, inputs: dict[str, Path]
) -> None:
    filler = small_disk.fill(small.disk, leave_bytes=2 * MB)
    try:
        ready = small.client.get("/ready")
        assert ready.status_code == 503, ready.text
        assert ready.json()["state"] == "ready" and "MB free" in ready.json()["storage"]
        before = _job_folders(small)
        r = small.post_files(inputs["video"], inputs["audio"])
        assert (r.status_code, r.json()["error"]["code"]) == (507, "INSUFFICIENT_STORAGE"), r.text
        assert "Retry-After" in r.headers
        r = small.client.post("/lipsync", json={"video_path": str(inputs["video"]), "audio_path": str(inputs["audio"])})
        assert (r.status_code, r.json()["error"]["code"]) == (507, "INSUFFICIENT_STORAGE"), r.text
        assert _job_folders(small) == before
        _alive(small)
    finally:
        filler.unlink()
    ready = small.client.get("/ready")
    assert ready.status_code == 200 and ready.json()["storage"] == "ok", ready.text


def test_an_upload_that_fills_the_disk_gets_507_and_leaves_nothing(small: SmallDiskServer, tmp_path: Path) -> None:
    filler = small_disk.fill(small.disk, leave_bytes=(MIN_FREE_MB + 2) * MB)  # admitted: above the threshold
    try:
        before, free = _job_folders(small), small.free_mb()
        big = tmp_path / "big.mp4"
        big.write_bytes(os.urandom(12 * MB))  # written until the disk is full; never probed
        small_wav = tmp_path / "a.wav"
        small_wav.write_bytes(b"RIFF")
        r = small.post_files(big, small_wav)
        assert (r.status_code, r.json()["error"]["code"]) == (507, "INSUFFICIENT_STORAGE"), r.text
        assert _job_folders(small) == before  # the partial upload was removed ...
        assert small.free_mb() == pytest.approx(free, abs=0.5)  # ... and its space given back
        _alive(small)
    finally:
        filler.unlink()


def test_a_job_that_fills_the_disk_fails_with_a_code_and_the_service_lives_on(
    small: SmallDiskServer, inputs: dict[str, Path]
) -> None:
    # Room for the upload (~0.3 MB) above the threshold, none for the decoded frames (~17 MB).
    filler = small_disk.fill(small.disk, leave_bytes=(MIN_FREE_MB + 1) * MB)
    try:
        r = small.post_files(inputs["video"], inputs["audio"])
        assert r.status_code == 202, r.text
        job = small.wait(r.json()["id"], {"succeeded", "failed"})
        assert job["status"] == "failed" and job["error"]["code"] == "INSUFFICIENT_STORAGE", job
        _alive(small)
    finally:
        filler.unlink()
    again = small.post_files(inputs["video"], inputs["audio"])  # with room again, the same job succeeds
    assert again.status_code == 202, again.text
    assert small.wait(again.json()["id"], {"succeeded", "failed"})["status"] == "succeeded"


_MOMENTS_ON_A_FULL_DISK = """
import errno, sys
from pathlib import Path
import torch
from latentsync_core.inference.template_cache import TemplateSession
session = TemplateSession(Path(sys.argv[1]), torch.float32)
try:
    session.open_moments(64, 64)  # 64 frames x 256 KiB: 16 MiB on a 4 MiB disk
except OSError as exc:
    print("refused", errno.errorcode[exc.errno])
    sys.exit(0)
session.moments(torch.arange(64).numpy(), lambda pos: torch.ones(len(pos), 2, 8, 64, 64), torch.device("cpu"))
print("written")
"""


def test_template_moments_on_a_full_disk_raise_enospc_instead_of_sigbus(tmp_path: Path) -> None:
    """The moments are a memory map; over a sparse file a full disk is a SIGBUS that kills the
    process at the first page that finds no block. Blocks are now reserved before mapping."""
    folder = tmp_path / "disk"
    cmd = small_disk.command(folder, 4 * MB, [sys.executable, "-c", _MOMENTS_ON_A_FULL_DISK, str(folder)])
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])  # -7 / 135: SIGBUS
    assert done.stdout.split() == ["refused", "ENOSPC"], done.stdout


def _read_until_closed(sock: socket.socket, timeout_s: float = 30.0) -> bytes:
    """Everything the server sends until it closes the connection (its 408 says ``close``)."""
    sock.settimeout(timeout_s)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass  # what arrived is what is checked
    return data


def test_a_trickling_upload_is_dropped_with_408_and_its_queue_slot_released(
    small: SmallDiskServer, inputs: dict[str, Path]
) -> None:
    """One byte every half second, on a real socket: every read is quick, the body never ends."""
    before = _job_folders(small)
    part = (b'--b\r\nContent-Disposition: form-data; name="video"; filename="v.mp4"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n")  # fmt: skip
    head = (f"POST /lipsync HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY}\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 1000000\r\n\r\n").encode()  # fmt: skip
    with socket.create_connection(("127.0.0.1", small.port), timeout=10) as sock:
        sock.sendall(head + part)
        deadline_bytes = 240  # a bound on the test (120 s), far past the server's deadline
        while _job_folders(small) == before and deadline_bytes:  # admitted: the upload is being received
            sock.sendall(b"x")
            deadline_bytes -= 1
            select.select([], [], [], 0.5)
        answer = b""
        while deadline_bytes:
            readable, _, _ = select.select([sock], [], [], 0.5)
            if readable:
                answer = _read_until_closed(sock)  # headers and body may come in separate segments
                break
            sock.sendall(b"x")
            deadline_bytes -= 1
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"BODY_TIMEOUT"' in answer
    assert _job_folders(small) == before  # the partial upload is gone
    again = small.post_files(inputs["video"], inputs["audio"])  # and the upload slot is free again
    assert again.status_code == 202, again.text
    small.client.delete(f"/jobs/{again.json()['id']}")
    small.wait(again.json()["id"], {"succeeded", "failed", "canceled"})
