"""The processes a soak drives (``tests/soak.py``): the service in embedded mode on a small disk
of its own that outlives restarts, and cluster mode's redis-server, API node and CPU workers,
each of which can be killed (SIGKILL or SIGTERM) and started again on the same port or name."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Protocol

import httpx
import redis

from server.client_util import ROOT, free_port
from tests import small_disk
from tests.redis_helpers import REDIS_SERVER
from tests.server_helpers import AUTH, ServerProcess

MB = 1 << 20


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM) so far; 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _stop(proc: subprocess.Popen, sig: signal.Signals, timeout: float = 90) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:  # a SIGTERM that did not end it: the soak records the kill
        proc.kill()
        proc.wait(timeout=30)
        return -9


class SmallDisk:
    """A tmpfs of ``size_bytes`` on ``folder`` in a private mount namespace held by an idle
    process, so that it keeps its files while the service in it is killed and restarted; the
    service enters that namespace (``nsenter``). The harness reads it through ``/proc``."""

    def __init__(self, folder: Path, size_bytes: int):
        if shutil.which("nsenter") is None:
            raise RuntimeError("nsenter (util-linux) is needed for the soak's small disk")
        self.folder = folder
        holder = small_disk.command(folder, size_bytes, ["sleep", "infinity"])
        self.holder = subprocess.Popen(holder, cwd=ROOT)
        deadline = time.time() + 30
        while not os.path.ismount(self.path):  # the mount is made before exec: wait for it
            if self.holder.poll() is not None or time.time() > deadline:
                raise RuntimeError("the small disk's holder did not mount its tmpfs")
            time.sleep(0.05)

    @property
    def path(self) -> Path:
        """``folder`` as the processes inside the namespace see it."""
        return Path(f"/proc/{self.holder.pid}/root") / str(self.folder).lstrip("/")

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the namespace (nsenter execs it: same pid, same signals), in the
        repository (entering a mount namespace moves to its root: ``python -m`` would then
        import an installed copy of the code instead of this one)."""
        user = [] if os.geteuid() == 0 else ["--user", "--preserve-credentials"]
        return ["nsenter", "--target", str(self.holder.pid), "--mount", *user, f"--wd={ROOT}", "--", *argv]

    def used_bytes(self) -> int:
        st = os.statvfs(self.path)
        return (st.f_blocks - st.f_bfree) * st.f_frsize

    def close(self) -> None:
        _stop(self.holder, signal.SIGKILL)


class Service(Protocol):
    """What the soak needs of a running deployment (embedded or cluster)."""

    api: ServerProcess
    data: Path  # the data folder as the harness reaches it

    def faults(self) -> list[str]: ...

    def inject(self, fault: str) -> None: ...

    def peak_rss_mb(self) -> float: ...

    def close(self) -> None: ...


class SmallDiskServer(ServerProcess):
    """The API process, inside ``disk``'s namespace when there is one."""

    def __init__(self, data_dir: Path, disk: SmallDisk | None, log: Path, **settings: object):
        super().__init__(data_dir, **settings)
        self.disk, self.log = disk, log
        self.peak = 0.0

    @property
    def log_path(self) -> Path:
        return self.log

    def wrap(self, argv: list[str]) -> list[str]:
        return self.disk.wrap(argv) if self.disk else argv

    def sample(self) -> float:
        self.peak = max(self.peak, peak_rss_mb(self.proc.pid))
        return self.peak

    def restart(self, sig: signal.Signals) -> int:
        self.sample()
        code = _stop(self.proc, sig)
        self.start()
        return code


class Embedded:
    """``latentsync serve`` alone (SQLite + DevicePool) with its data on a small disk."""

    def __init__(self, folder: Path, disk_mb: int, **settings: object):
        self.disk = SmallDisk(folder / "data", disk_mb * MB)
        self.api = SmallDiskServer(folder / "data", self.disk, folder / "server.log", **settings)
        try:
            self.api.start()
        except BaseException:
            self.disk.close()
            raise

    @property
    def data(self) -> Path:
        return self.disk.path

    def faults(self) -> list[str]:
        return ["kill9_api", "sigterm_api"]  # and a full disk, which the soak makes itself

    def inject(self, fault: str) -> None:
        if fault in ("kill9_api", "sigterm_api"):
            self.api.restart(signal.SIGKILL if fault == "kill9_api" else signal.SIGTERM)
        else:
            raise ValueError(fault)

    def peak_rss_mb(self) -> float:
        return self.api.sample()

    def close(self) -> None:
        self.api.stop()
        self.disk.close()


class RedisProcess:
    """redis-server on a fixed loopback port with an fsync-always append-only file, so a
    restart (even kill -9) keeps the jobs and the queued tasks, as a production Redis would."""

    def __init__(self, folder: Path):
        self.folder, self.port = folder, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.start()

    def start(self) -> None:
        cmd = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
               "--save", "", "--appendonly", "yes", "--appendfsync", "always"]  # fmt: skip
        with open(self.folder / "redis.log", "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        client, deadline = redis.Redis(port=self.port), time.time() + 30
        while True:
            try:
                client.ping()
                return
            except (redis.ConnectionError, redis.BusyLoadingError):
                if time.time() > deadline or self.proc.poll() is not None:
                    raise
                time.sleep(0.1)

    def restart(self) -> None:
        _stop(self.proc, signal.SIGKILL)
        self.start()

    def close(self) -> None:
        _stop(self.proc, signal.SIGTERM)


class Worker:
    """``python -m server.worker_cli`` on the CPU under a fixed name."""

    def __init__(self, name: str, env: dict[str, str], log: Path):
        self.name, self.env, self.log = name, env, log
        self.peak = 0.0
        self.start()

    def start(self, timeout: float = 180.0) -> None:
        offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "server.worker_cli", "--gpus", "cpu", "--name", self.name],
                cwd=ROOT, env={**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.time() + timeout
        while " ready." not in self.log.read_bytes()[offset:].decode(errors="replace"):  # Celery's consuming line
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"worker {self.name} did not get ready (see {self.log})")
            time.sleep(0.2)

    def restart(self, sig: signal.Signals) -> float:
        """Stop with ``sig`` and start again; the seconds the old process took to exit."""
        self.peak = max(self.peak, peak_rss_mb(self.proc.pid))
        began = time.time()
        _stop(self.proc, sig)
        took = time.time() - began
        self.start()
        return took

    def close(self) -> None:
        _stop(self.proc, signal.SIGTERM, timeout=60)


class Cluster:
    """redis-server, an API node and two CPU workers sharing one data folder."""

    def __init__(self, folder: Path, **settings: object):
        self.folder = folder
        (folder / "data").mkdir(parents=True, exist_ok=True)
        self.redis = RedisProcess(folder)
        self.api = SmallDiskServer(folder / "data", None, folder / "server.log", broker_url=self.redis.url, **settings)
        self.workers: list[Worker] = []
        self.sigterm_exit_s: list[float] = []
        try:
            self.api.start()
            for name in ("w1", "w2"):  # one after the other: the first builds the demo weights
                self.workers.append(Worker(name, self.api.env, folder / f"{name}.log"))
        except BaseException:
            self.close()
            raise

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def faults(self) -> list[str]:
        return ["kill9_api", "sigterm_api", "kill9_worker", "sigterm_worker", "redis_restart"]

    def inject(self, fault: str, pick: int = 0) -> None:
        if fault in ("kill9_api", "sigterm_api"):
            self.api.restart(signal.SIGKILL if fault == "kill9_api" else signal.SIGTERM)
        elif fault in ("kill9_worker", "sigterm_worker"):
            worker = self.workers[pick % len(self.workers)]
            took = worker.restart(signal.SIGKILL if fault == "kill9_worker" else signal.SIGTERM)
            if fault == "sigterm_worker":
                self.sigterm_exit_s.append(took)
        elif fault == "redis_restart":
            self.redis.restart()
            _wait_ok(self.api)
        else:
            raise ValueError(fault)

    def peak_rss_mb(self) -> float:
        for w in self.workers:
            w.peak = max(w.peak, peak_rss_mb(w.proc.pid))
        return self.api.sample()

    def close(self) -> None:
        for worker in self.workers:
            worker.close()
        self.api.stop()
        self.redis.close()


def _wait_ok(api: ServerProcess, timeout: float = 120.0) -> None:
    """Until the API answers /ready again (its store reconnects by itself)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(f"{api.base}/ready", headers=AUTH, timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError("the API did not get ready again after the Redis restart")
