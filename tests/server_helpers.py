"""A real service process for the tests."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import httpx

from server.client_util import free_port, start_server, wait_ready

KEY = "test-key-123"
AUTH = {"Authorization": f"Bearer {KEY}"}


class ServerProcess:
    def __init__(self, data_dir: Path, **settings: object):
        self.data_dir = data_dir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            "LATENTSYNC_WEIGHTS": "demo",
            "LATENTSYNC_DEVICE": "cpu",
            "LATENTSYNC_DATA_DIR": str(data_dir),
            "LATENTSYNC_INFERENCE_STEPS": "2",
            "LATENTSYNC_API_KEYS": KEY,
            "LATENTSYNC_WARMUP": "false",
            # The tests' jobs need a few MB; a CI disk with under the default 1 GB free must not
            # make /ready 503 (the disk-full tests set their own threshold).
            "LATENTSYNC_MIN_FREE_MB": "64",
        }
        self.env.update({f"LATENTSYNC_{k.upper()}": str(v) for k, v in settings.items()})
        self.proc = None
        self.client = httpx.Client(base_url=self.base, headers=AUTH, timeout=60)

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    def wrap(self, argv: list[str]) -> list[str]:
        """The command that runs the service's ``argv``: itself here (a subclass runs it on a
        disk of its own)."""
        return argv

    def start(self) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = start_server(self.env, self.port, self.log_path, self.wrap)
        try:
            wait_ready(self.base, headers=AUTH, proc=self.proc)
        except BaseException:  # a service that never got ready must not outlive the test
            self.proc.kill()
            self.proc.wait(timeout=30)
            raise
        return self

    def kill(self) -> None:
        """As a crash would: no shutdown handlers."""
        self.proc.kill()
        self.proc.wait(timeout=30)

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=90)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.terminate()

    def db_row(self, job_id: str) -> dict:
        db = sqlite3.connect(self.data_dir / "jobs.sqlite3")
        db.row_factory = sqlite3.Row
        row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        db.close()
        return dict(row)

    def post_files(self, video: Path, audio: Path, **fields: object) -> httpx.Response:
        with open(video, "rb") as v, open(audio, "rb") as a:
            return self.client.post(
                "/lipsync",
                files={"video": (video.name, v, "application/octet-stream"), "audio": (audio.name, a, "audio/wav")},
                data={k: str(v) for k, v in fields.items()},
            )

    def wait(self, job_id: str, statuses: set[str], timeout: float = 240.0) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            job = self.client.get(f"/jobs/{job_id}").json()
            if job["status"] in statuses:
                return job
            time.sleep(0.2)
        raise TimeoutError(f"job {job_id} still {job['status']} after {timeout} s")
