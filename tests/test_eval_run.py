"""``latentsync eval run`` end to end with demo weights, as real processes: two UNets (the
demo one and a second random one) on two pairs cut from the bundled talking head (one with
its own speech, one dubbed with the other's), killed once it has finished a video and run
again; then ``eval report``. FVD uses a small TorchScript I3D with the published call
signature (tests/test_eval.py)."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from latentsync_core.evaluation.report import compare_pair
from latentsync_core.evaluation.store import GROUND_TRUTH
from latentsync_core.weights.demo import demo_unet_config
from latentsync_core.weights.random_weights import write_random_unet_checkpoint
from tests.media_helpers import make_audio, make_clip
from tests.test_eval import save_tiny_i3d

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
SECONDS = 0.8  # 20 frames: a 16-frame FVD clip and SyncNet's offset search fit


def _command(folder: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "server.cli",
        "eval",
        "run",
        "--test-set",
        str(folder / "tests.txt"),
        "--unet",
        "demo",
        "--unet",
        f"ft={folder / 'other_unet.pt'}",
        "--output",
        str(folder / "out"),
        "--steps",
        "2",
        "--i3d",
        str(folder / "i3d.pt"),
        "--detect-workers",
        "1",
        "--no-progress",
        *extra,
    ]


def _env(folder: Path) -> dict[str, str]:
    return {**os.environ, "LATENTSYNC_WEIGHTS": "demo", "LATENTSYNC_DATA_DIR": str(folder), "OMP_NUM_THREADS": "1"}


def _done(db: Path, model: str) -> list[str]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            rows = conn.execute("SELECT test FROM results WHERE model = ? AND status = 'done'", (model,)).fetchall()
    except sqlite3.OperationalError:  # the schema is being created
        return []
    return [r[0] for r in rows]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("eval")
    a = make_clip(ASSETS / "demo1_video.mp4", folder / "a.mp4", SECONDS, start=1.0)
    b = make_clip(ASSETS / "demo1_video.mp4", folder / "b.mp4", SECONDS, start=3.0)
    speech = make_audio(ASSETS / "demo1_audio.wav", folder / "a_speech.wav", SECONDS, start=1.0)
    (folder / "tests.txt").write_text(f"{a}\n{b}\t{speech}\n")
    write_random_unet_checkpoint(folder / "other_unet.pt", demo_unet_config(), seed=7)
    save_tiny_i3d(folder / "i3d.pt")
    db = folder / "out" / "results.sqlite"

    run = subprocess.Popen(_command(folder), cwd=ROOT, env=_env(folder), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not _done(db, "demo") and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    run.send_signal(signal.SIGKILL)
    _, err = run.communicate()
    assert run.returncode == -signal.SIGKILL, err.decode()[-2000:]  # killed, not finished
    finished = _done(db, "demo")
    assert len(finished) == 1 and not _done(db, "ft")
    videos = folder / "out" / "videos" / "demo"
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in videos.glob("*.mp4")}

    resumed = subprocess.run(_command(folder), cwd=ROOT, env=_env(folder), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    report = subprocess.run(
        [sys.executable, "-m", "server.cli", "eval", "report", str(folder / "out")],
        cwd=ROOT,
        env=_env(folder),
        capture_output=True,
        text=True,
    )
    assert report.returncode == 0, report.stderr[-3000:]
    return {"folder": folder, "finished": finished, "before": before, "resumed": resumed.stdout, "report": report}


def test_a_killed_run_resumes_without_regenerating_finished_videos(evaluated):
    out = evaluated["folder"] / "out"
    # the video finished before the kill is the same file; the other three were made now
    assert "3 generated, 3 scored, 1 kept from before, 0 failed" in evaluated["resumed"]
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / "videos" / "demo").glob("*.mp4")}
    kept = f"{evaluated['finished'][0]}.mp4"
    assert after[kept] == evaluated["before"][kept]
    assert len(after) == 2 and len(list((out / "videos" / "ft").glob("*.mp4"))) == 2
    assert not list(out.rglob(".partial-*")) and not list(out.rglob(".work"))  # the kill's leftovers are gone


def test_two_unet_report_writes_table_json_csv_and_png(evaluated):
    out = evaluated["folder"] / "out"
    text = (out / "report.txt").read_text()
    assert text in evaluated["report"].stdout
    for line in ("LSE-C (sync confidence)", "FVD against the source videos", "ft - demo (paired", "demo weights"):
        assert line in text
    report = json.loads((out / "report.json").read_text())
    names = [m["name"] for m in report["models"]]
    assert names == [GROUND_TRUTH, "demo", "ft"]  # the ground truth: the one test with its own speech
    truth, demo, ft = report["models"]
    assert truth["metrics"]["lse_c"]["n"] == 1 and truth["reference"]
    for model in (demo, ft):
        assert model["metrics"]["lse_c"]["n"] == 2 and model["metrics"]["face_fraction"]["n"] == 2
        assert model["fvd"]["n"] == 2 and model["fvd"]["value"] >= 0
        assert model["quality_model"] == "embedded-sharpness"  # no HyperIQA weights with demo weights
    assert demo["metrics"]["lse_c"]["mean"] != ft["metrics"]["lse_c"]["mean"]  # two different UNets
    (comparison,) = report["comparisons"]
    assert (comparison["a"], comparison["b"]) == ("demo", "ft") and comparison["metrics"]["lse_c"]["n"] == 2
    rows = list(csv.DictReader((out / "report.csv").open()))
    assert {(r["kind"], r["model"], r["metric"]) for r in rows} >= {
        ("summary", GROUND_TRUTH, "lse_c"),
        ("summary", "demo", "fvd"),
        ("difference", "ft", "lse_d"),
    }
    png = (out / "report.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000


def test_paired_difference_of_a_model_against_itself_is_exactly_zero(evaluated):
    same = compare_pair(evaluated["folder"] / "out", "demo", "demo")
    for metric, d in same["metrics"].items():
        assert d["n"] == 2 and d["mean_diff"] == 0.0 and d["mean_diff_ci"] == [0.0, 0.0] and d["p_value"] == 1.0, metric
    assert same["fvd"]["diff"] == 0.0
