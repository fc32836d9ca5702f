"""The ``latentsync`` command line as a user runs it: a real process, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.media_helpers import make_audio, make_clip


def _latentsync(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LATENTSYNC_WEIGHTS": "demo", "LATENTSYNC_DEVICE": "cpu", "LATENTSYNC_DATA_DIR": str(cwd)}
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args], cwd=Path(__file__).resolve().parent.parent, env=env,
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def test_sync_score_prints_writes_json_and_plot(media_dir: Path, tmp_path: Path) -> None:
    clip = make_clip(media_dir / "demo1_video.mp4", tmp_path / "talk.mp4", 1.2, start=2.0, fps=30)
    out = _latentsync("sync-score", str(clip), "--json", str(tmp_path / "s.json"), "--plot", str(tmp_path / "s.png"),
                      cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "LSE-C" in out.stdout and "LSE-D" in out.stdout and "demo weights" in out.stdout
    report = json.loads((tmp_path / "s.json").read_text())
    assert set(report) >= {"offset_frames", "lse_c", "lse_d", "weights"} and report["weights"] == "demo"
    assert report["offset_ms"] == 40 * report["offset_frames"] and report["frames_scored"] == 30
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sync_score_errors_have_a_code_and_a_sentence(media_dir: Path, tmp_path: Path) -> None:
    silent = make_clip(media_dir / "demo1_video.mp4", tmp_path / "silent.mp4", 0.8, audio=False)
    out = _latentsync("sync-score", str(silent), cwd=tmp_path)
    assert out.returncode == 2 and "error [NO_AUDIO_STREAM]" in out.stderr and "--audio" in out.stderr
    speech = make_audio(media_dir / "demo1_audio.wav", tmp_path / "a.wav", 0.1)
    out = _latentsync("sync-score", str(silent), "--audio", str(speech), cwd=tmp_path)
    assert out.returncode == 2 and "error [TOO_SHORT]" in out.stderr


def test_the_command_line_starts_without_the_model_stack() -> None:
    """``latentsync --help``, ``config`` or ``submit`` must not pay for torch: registering the
    commands imports no model code (each command imports what it runs)."""
    probe = "import sys, server.cli; heavy = sorted({'torch', 'whisper', 'cv2'} & set(sys.modules)); print(heavy)"
    out = subprocess.run([sys.executable, "-c", probe], cwd=Path(__file__).resolve().parent.parent,
                         capture_output=True, text=True, timeout=300, check=True)  # fmt: skip
    assert out.stdout.strip() == "[]", out.stdout
