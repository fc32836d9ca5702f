"""The client installs alone: its distribution (clients/python) built into a wheel and
installed into a fresh virtual environment (no system site-packages) brings httpx and
nothing of the model stack; the client imports and its command runs there."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    run = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300, cwd=cwd)
    assert run.returncode == 0, f"{args}: {run.stdout}\n{run.stderr}"
    return run


def test_the_client_installs_and_imports_in_a_fresh_venv_without_torch(tmp_path: Path) -> None:
    source = tmp_path / "src"  # a copy: the build writes build/ and egg-info next to its sources
    shutil.copytree(ROOT / "clients" / "python", source, symlinks=False)
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", source, "-w", tmp_path / "w")
    [wheel] = (tmp_path / "w").glob("latentsync_client-*.whl")

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)  # no --system-site-packages
    python = venv / "bin" / "python"
    # This pip installs into the fresh interpreter; the dependencies come from the configured indexes.
    _run(sys.executable, "-m", "pip", "--python", python, "install", "-q", wheel)

    installed = {
        line.split("==")[0].lower()
        for line in _run(sys.executable, "-m", "pip", "--python", python, "freeze", "--all").stdout.split()
    }
    assert {"latentsync-client", "httpx"} <= installed
    assert not installed & {"torch", "numpy", "fastapi", "pydantic", "latentsync-service"}, installed

    probe = (
        "import importlib.util as u, sys, latentsync_client as c\n"
        "assert c.Client and c.AsyncClient and c.verify_webhook\n"
        "assert c.__file__.startswith(sys.prefix), c.__file__\n"  # the installed copy, not the repository's
        "print([m for m in ('torch', 'numpy', 'fastapi') if u.find_spec(m) is not None])\n"
    )
    assert _run(python, "-I", "-c", probe, cwd=tmp_path).stdout.strip() == "[]"
    helped = _run(venv / "bin" / "latentsync-client", "submit", "--help", cwd=tmp_path)
    assert "--server" in helped.stdout and "--wait" in helped.stdout
