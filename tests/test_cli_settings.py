"""One way to set things (issue 24 item 4), through real ``latentsync`` processes: a flag beats
``LATENTSYNC_*`` in the environment, which beats ``.env`` in the working folder, which beats the
default; ``latentsync config`` says which one each value came from and masks secrets; the
library's commands (``train unet``, ``preprocess``) read the same settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from server.settings import Settings
from tests.train_helpers import make_data, write_config

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 300  # seconds; generous: the machine may be shared


def start(cwd: Path, *args: str, **env: str) -> subprocess.Popen:
    """``latentsync ARGS`` in ``cwd`` with no LATENTSYNC_* variable but ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("LATENTSYNC_")}
    clean.update(env, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "server.cli", *args]
    return subprocess.Popen(cmd, cwd=cwd, env=clean, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    out, err = proc.communicate(timeout=TIMEOUT)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def latentsync(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return finish(start(cwd, *args, **env))


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """``latentsync config --json`` in a folder whose .env sets four settings; the environment
    sets two of them (and a Redis URL with a password) and a flag one of those."""
    cwd = tmp_path_factory.mktemp("cfg")
    (cwd / ".env").write_text(
        "LATENTSYNC_WEIGHTS=demo\nLATENTSYNC_SEED=7\nLATENTSYNC_MAX_QUEUE=5\n"
        "LATENTSYNC_WEBHOOK_SECRET=whsec_dG9wc2VjcmV0\nLATENTSYNC_WIEGHTS=demo\n"
    )
    out = latentsync(
        cwd,
        "config",
        "--json",
        "--max-queue",
        "9",
        LATENTSYNC_SEED="8",
        LATENTSYNC_MAX_QUEUE="6",
        LATENTSYNC_API_KEYS="key-one,key-two",
        LATENTSYNC_BROKER_URL="redis://:hunter2@redis.local:6379/0",
    )
    assert out.returncode == 0, out.stderr
    return {"json": json.loads(out.stdout), "raw": out.stdout}


def test_dotenv_value_is_reported_with_its_source(config):
    rows = config["json"]["settings"]
    assert rows["weights"] == {"env": "LATENTSYNC_WEIGHTS", "value": "demo", "source": ".env"}
    assert rows["guidance_scale"]["source"] == "default" and rows["guidance_scale"]["value"] == 1.5
    assert config["json"]["unused"] == ["LATENTSYNC_WIEGHTS (.env)"]  # a misspelt name is pointed out


def test_environment_beats_dotenv_and_flag_beats_both(config):
    rows = config["json"]["settings"]
    assert rows["seed"]["value"] == 8 and rows["seed"]["source"] == "environment"  # .env says 7
    assert rows["max_queue"]["value"] == 9 and rows["max_queue"]["source"] == "flag"  # env 6, .env 5


def test_secrets_are_masked(config):
    rows = config["json"]["settings"]
    assert rows["webhook_secret"] == {"env": "LATENTSYNC_WEBHOOK_SECRET", "value": "***", "source": ".env"}
    assert rows["api_keys"]["value"] == ["***", "***"]
    assert rows["broker_url"]["value"] == "redis://:***@redis.local:6379/0"
    assert rows["admin_api_keys"]["value"] == []  # unset stays visibly unset
    for secret in ("dG9wc2VjcmV0", "key-one", "key-two", "hunter2"):
        assert secret not in config["raw"]


def test_bad_setting_is_a_coded_error(tmp_path, monkeypatch, capsys):
    """In process (the entry is the same): a value no setting takes stops every command at once."""
    from server.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LATENTSYNC_MAX_QUEUE", "many")
    for argv in (["config", "--weights", "official"], ["download-weights"], ["db", "check"]):
        assert main(argv) == 2, argv
        assert capsys.readouterr().err.startswith("error [SETTINGS_INVALID]: LATENTSYNC_MAX_QUEUE"), argv


def test_library_reader_matches_the_service_settings(tmp_path, monkeypatch):
    """The reader of library commands run on their own has the service's defaults and order."""
    from latentsync_core.common.cli_settings import LibrarySettings, read_settings

    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.upper().startswith("LATENTSYNC_"):
            monkeypatch.delenv(name)
    service, library = Settings(), read_settings()
    for name in LibrarySettings.__dataclass_fields__:
        assert getattr(library, name) == getattr(service, name), name
    dotenv = "LATENTSYNC_DEVICE=cpu\nLATENTSYNC_DETECT_WORKERS=3\nLATENTSYNC_ENABLE_DEEPCACHE=yes\n"
    (tmp_path / ".env").write_text(dotenv)
    monkeypatch.setenv("LATENTSYNC_DETECT_WORKERS", "2")
    service, library = Settings(), read_settings()
    for name in ("device", "detect_workers", "enable_deepcache"):
        assert getattr(library, name) == getattr(service, name), name
    assert (library.device, library.detect_workers, library.enable_deepcache) == ("cpu", 2, True)


def test_train_unet_takes_demo_weights_from_the_environment(tmp_path):
    """No --weights and no --checkpoint-dir: LATENTSYNC_WEIGHTS=demo builds the demo weights in
    the service's cache (LATENTSYNC_DATA_DIR/cache) and trains on them; before, the official
    VAE was looked up and the command stopped with CHECKPOINT_NOT_FOUND."""
    data = make_data(tmp_path / "data", train=[(0.0, 1.4)], val=[])
    config = write_config(tmp_path / "cfg.yaml", tmp_path / "unused")  # 8 frames of 64 px
    run = tmp_path / "run"
    args = ["--config", str(config), "--data", str(data), "--output", str(run), "--max-steps", "1"]
    out = latentsync(
        tmp_path,
        *("train", "unet", *args, "--no-validation", "--no-progress"),
        LATENTSYNC_WEIGHTS="demo",
        LATENTSYNC_DATA_DIR=str(tmp_path / "service"),
        LATENTSYNC_DEVICE="cpu",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "trained to step 1" in out.stdout
    assert (tmp_path / "service" / "cache" / "demo-weights-v1" / "latentsync_unet.pt").is_file()


def test_preprocess_reads_checkpoint_dir_from_dotenv_and_its_flag_wins(tmp_path):
    """The official SyncNetV2 is looked for where .env's LATENTSYNC_CHECKPOINT_DIR says, and where
    --checkpoint-dir says when given (both folders are empty: the run stops before any work,
    naming the file it looked for)."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.mp4").write_bytes(b"")  # found by name; the weights are checked before any video is read
    (tmp_path / ".env").write_text(f"LATENTSYNC_CHECKPOINT_DIR={tmp_path / 'from-dotenv'}\n")
    cmd = ["preprocess", "--input-dir", str(raw), "--no-progress"]
    from_dotenv = start(tmp_path, *cmd, "--output-dir", str(tmp_path / "out1"))
    from_flag = start(
        tmp_path, *cmd, "--output-dir", str(tmp_path / "out2"), "--checkpoint-dir", str(tmp_path / "from-flag")
    )
    for out, folder in ((finish(from_dotenv), "from-dotenv"), (finish(from_flag), "from-flag")):
        assert out.returncode == 2, out.stderr
        expected = f"error [WEIGHTS_MISSING]: SyncNetV2 checkpoint not found: {tmp_path / folder / 'auxiliary'}"
        assert expected in out.stderr, out.stderr
