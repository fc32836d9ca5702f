"""Starting a service process and talking to it: used by the demo, the tests and benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    env: dict[str, str], port: int, log_path: Path, wrap: Callable[[list[str]], list[str]] | None = None
) -> subprocess.Popen:
    """``latentsync serve`` in its own process on loopback, its output going to ``log_path``;
    ``wrap`` turns the command into the one that runs it (inside a namespace, say)."""
    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    log = open(log_path, "ab")  # noqa: SIM115 (the child owns it)
    argv = [sys.executable, "-m", "server.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen(
        wrap(argv) if wrap is not None else argv,
        cwd=ROOT,
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_ready(
    base: str, timeout: float = 180.0, headers: dict[str, str] | None = None, proc: subprocess.Popen | None = None
) -> dict:
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the service exited with code {proc.returncode} before it was ready")
        try:
            r = httpx.get(f"{base}/ready", headers=headers, timeout=5)
            last = r
            if r.status_code == 200:
                return r.json()
            if r.status_code == 503 and r.json().get("state") == "error":
                raise RuntimeError(f"service failed to load: {r.json()}")
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"service not ready after {timeout} s (last answer: {last and last.text})")
