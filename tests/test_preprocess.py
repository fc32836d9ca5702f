"""``latentsync preprocess`` end to end on real media: pieces of the bundled talking head
(downscaled, re-timed, cut and joined by ffmpeg) plus broken and face-less files.

SyncNet runs with demo (random) weights, whose confidences mean nothing: the threshold is
set below any confidence and the offset search to +-3 frames with max_offset 3, so every
segment passes stage 6 whatever the network says (the sync rule itself is tested with a
network of known answers in test_preprocess_units.py). Segments are 1 s so that the whole
module runs in a few minutes on two cores.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from latentsync_core.data import cli
from latentsync_core.media.ffmpeg_bin import ffmpeg_exe, input_arg, run_ffmpeg
from latentsync_core.media.probe import probe

ROOT = Path(__file__).resolve().parent.parent
DEMO_VIDEO = ROOT / "assets" / "demo1_video.mp4"

OPTIONS = [
    *["--segment-seconds", "1", "--min-segment-seconds", "1"],
    *["--sync-conf-threshold", "-1", "--max-offset", "3", "--set", "sync_vshift=3"],
    *["--set", "min_face_size=60"],  # the 360x640 pieces have ~72 px faces
    *["--set", "min_sharpness=3"],  # ... upscaled 3.5x to 256 px: soft, but not blurred
    *["--workers", "2", "--gpus", "none", "--no-progress"],
]

REJECTED_AT_CHECK = {
    "corrupt.mp4": "unreadable",
    "empty.mp4": "empty_file",
    "audio_only.mp4": "no_video",
    "video_only.mp4": "no_audio",
    "garbled.mp4": "undecodable",
}
# Kept segments per source: 1 s segments; remainders under 1 s are dropped.
KEPT = {"good.mp4": 2, "fps30.mp4": 1, "fps60.mov": 1, "sub/vfr.mp4": 1, "two_shots.mp4": 2, "audio_delayed.mp4": 1}


def _build_corpus(raw: Path, base: Path) -> None:
    raw.mkdir(parents=True)
    (raw / "sub").mkdir()
    b = input_arg(base)
    enc = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k"]

    def cut(name: str, start: float, seconds: float, *extra: str) -> None:
        run_ffmpeg(["-ss", str(start), "-t", str(seconds), "-i", b, *extra, *enc, str(raw / name)])

    cut("good.mp4", 0, 2)
    cut("fps30.mp4", 2, 1.2, "-vf", "fps=30")
    cut("fps60.mov", 3.2, 1, "-vf", "fps=60")
    # Variable frame rate: every 4th frame dropped, the others keep their time stamps.
    cut("sub/vfr.mp4", 4.2, 1.2, "-vf", r"select=not(eq(mod(n\,4)\,3))", "-fps_mode", "vfr")
    cut("audio_delayed.mp4", 6.5, 1.2, "-af", "adelay=120:all=1")  # speech 3 frames late
    # Two shots: the same speaker, then mirrored, zoomed and colour-graded (a hard cut at 1.5 s).
    joined = (
        "[0:v]trim=0:1.5,setpts=PTS-STARTPTS,setsar=1[a];"
        "[0:v]trim=5:6.5,setpts=PTS-STARTPTS,hflip,crop=300:533:30:40,scale=360:640,setsar=1,"
        "eq=saturation=0.3:brightness=0.08[b];[a][b]concat=n=2:v=1:a=0[v];"
        "[0:a]atrim=0:1.5,asetpts=PTS-STARTPTS[x];[0:a]atrim=5:6.5,asetpts=PTS-STARTPTS[y];"
        "[x][y]concat=n=2:v=0:a=1[au]"
    )
    run_ffmpeg(["-i", b, "-filter_complex", joined, "-map", "[v]", "-map", "[au]", *enc, str(raw / "two_shots.mp4")])
    lavfi = ["-f", "lavfi", "-i", "testsrc=size=360x640:rate=25:duration=1", "-f", "lavfi", "-i", "sine=duration=1"]
    run_ffmpeg([*lavfi, *enc, "-shortest", str(raw / "no_face.mp4")])
    cut("audio_only.mp4", 0, 1, "-vn")
    cut("video_only.mp4", 0, 1, "-an")
    # Headers intact (it probes), picture data overwritten: it does not decode.
    run_ffmpeg(["-i", input_arg(raw / "good.mp4"), "-c", "copy", "-movflags", "+faststart", str(raw / "garbled.mp4")])
    data = bytearray((raw / "garbled.mp4").read_bytes())
    start = data.find(b"mdat") + 8 + 2000
    data[start : start + 58000] = np.random.default_rng(1).integers(0, 256, 58000, dtype=np.uint8).tobytes()
    (raw / "garbled.mp4").write_bytes(bytes(data))
    (raw / "empty.mp4").write_bytes(b"")
    (raw / "corrupt.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    (raw / "notes.txt").write_text("not a video: ignored")


@pytest.fixture(scope="module")
def demo_weights() -> object:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LATENTSYNC_WEIGHTS", "demo")
        yield


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    base = folder / "base.mp4"  # the talking head at 360x640, 8 s
    encode = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "16", "-c:a", "aac"]
    run_ffmpeg(["-t", "8", "-i", input_arg(DEMO_VIDEO), "-vf", "scale=360:640,setsar=1", *encode, str(base)])
    _build_corpus(folder / "raw", base)
    return folder / "raw"


def _run(raw: Path, out: Path, *extra: str) -> int:
    return cli.main(["preprocess", "--input-dir", str(raw), "--output-dir", str(out), *OPTIONS, *extra])


@pytest.fixture(scope="module")
def first_run(corpus: Path, tmp_path_factory: pytest.TempPathFactory, demo_weights: object) -> Path:
    out = tmp_path_factory.mktemp("data")
    started = time.time()
    assert _run(corpus, out) == 0
    print(f"first run: {time.time() - started:.1f} s")
    return out


def _report(out: Path) -> dict:
    import json

    return json.loads((out / "report.json").read_text())


def _rows(out: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(out / "manifest.sqlite") as db:
        return db.execute(sql).fetchall()


def _result(out: Path) -> list[tuple]:
    """Everything a run decided, without paths and timings."""
    clips = _rows(
        out,
        'SELECT clip_id, source, start_s, end_s, frames, status, stage, reason, "offset", round(confidence, 3),'
        " face_size, round(quality_score, 2), quality_model, split, stage1_check, stage2_resample, stage3_shots,"
        " stage4_segment, stage5_align, stage6_sync, stage7_quality FROM clip_manifest ORDER BY clip_id",
    )
    sources = _rows(out, "SELECT rel_path, status, stage, reason, frames FROM sources ORDER BY rel_path")
    return clips + sources


def test_counts_and_reasons(first_run: Path) -> None:
    report = _report(first_run)
    stages = {s["name"]: s for s in report["stages"]}
    assert report["weights"] == "demo" and report["quality_model"] == "embedded"
    assert stages["check"]["items_in"] == 12  # notes.txt is not a video
    assert stages["check"]["reasons"] == {r: 1 for r in REJECTED_AT_CHECK.values()}
    assert (stages["resample"]["passed"], stages["shots"]["passed"]) == (7, 7)
    assert stages["segment"]["items_in"] == 8  # shots: two_shots has two
    assert (stages["segment"]["passed"], stages["segment"]["reasons"]) == (9, {"too_short": 5})
    assert stages["align"]["reasons"] == {"no_face": 1}
    assert stages["sync"]["passed"] == stages["quality"]["passed"] == report["totals"]["clips_kept"] == 8
    assert all(s["pending"] == 0 for s in stages.values())
    rejected = dict(_rows(first_run, "SELECT rel_path, reason FROM sources WHERE status = 'rejected'"))
    assert rejected == REJECTED_AT_CHECK
    kept = _rows(first_run, "SELECT source, count(*) FROM clip_manifest WHERE status = 'kept' GROUP BY source")
    assert dict(kept) == KEPT
    assert _rows(first_run, "SELECT source, reason FROM clip_manifest WHERE stage = 5 AND status = 'rejected'") == [
        ("no_face.mp4", "no_face")
    ]
    meta = dict(_rows(first_run, "SELECT key, value FROM meta"))
    assert meta["weights"] == "demo" and meta["quality_model"] == "embedded"
    assert (first_run / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (first_run / "work").exists()  # intermediates removed
    assert not [p for p in first_run.rglob("*") if ".part-" in p.name]


def test_two_joined_shots_are_split(first_run: Path) -> None:
    (shots,) = _rows(
        first_run,
        "SELECT measurements FROM decisions d JOIN sources s ON s.source_id = d.item_id"
        " WHERE d.stage = 3 AND s.rel_path = 'two_shots.mp4'",
    )
    import json

    bounds = json.loads(shots[0])["shots"]
    assert len(bounds) == 2 and abs(bounds[0][1] - 38) <= 2  # the cut at 1.5 s = frame 37.5
    clips = _rows(
        first_run,
        "SELECT clip_id, start_s, end_s FROM clip_manifest WHERE source = 'two_shots.mp4'"
        " AND status = 'kept' ORDER BY clip_id",
    )
    assert ["_shot000_" in clips[0][0], "_shot001_" in clips[1][0]] == [True, True]
    assert clips[1][1] >= bounds[1][0] / 25


def _audio_layout(path: Path) -> str:
    text = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    return re.search(r"Audio: .*", text).group(0)  # type: ignore[union-attr]


def test_kept_clips_are_25_fps_16_khz_mono_square(first_run: Path) -> None:
    from latentsync_core.media.video_io import FrameReader

    rows = _rows(
        first_run,
        "SELECT path, frames, \"offset\", confidence, face_size, quality_score, split FROM clips WHERE status = 'kept'",
    )
    assert len(rows) == 8
    for path, frames, offset, confidence, face_size, quality, split in rows:
        clip = Path(path)
        assert clip.parent == first_run / "clips" and clip.suffix == ".mp4"
        info = probe(clip)
        assert (info.width, info.height, info.fps, info.audio_sample_rate) == (256, 256, 25.0, 16000)
        assert "16000 Hz, mono" in _audio_layout(clip)
        with FrameReader(clip, 256, 256) as reader:
            assert sum(1 for _ in reader) == frames - abs(offset)  # the shift trims the frames without audio
        assert abs(offset) <= 3 and confidence is not None and face_size > 60 and quality > 3
        assert split in ("train", "val")
    train = (first_run / "fileslist_train.txt").read_text().split()
    val = (first_run / "fileslist_val.txt").read_text().split()
    assert sorted(train + val) == sorted(r[0] for r in rows) and train and val
    by_source = _rows(
        first_run, "SELECT source, count(DISTINCT split) FROM clip_manifest WHERE status = 'kept' GROUP BY source"
    )
    assert all(n == 1 for _, n in by_source)  # a source's clips are all on one side


def test_rerun_does_no_work(first_run: Path, corpus: Path) -> None:
    before = _result(first_run)
    mtimes = {p: p.stat().st_mtime_ns for p in (first_run / "clips").iterdir()}
    assert _run(corpus, first_run) == 0
    report = _report(first_run)
    assert all(s["processed_this_run"] == 0 for s in report["stages"])
    assert report["run"]["processed"] == {} and report["totals"]["clips_kept"] == 8
    assert _result(first_run) == before
    assert {p: p.stat().st_mtime_ns for p in (first_run / "clips").iterdir()} == mtimes


def _part_of(corpus: Path, folder: Path, names: list[str]) -> Path:
    """A corpus of some of ``corpus``'s files (links): a run's decisions on them are the full run's."""
    folder.mkdir()
    for name in names:
        (folder / name).symlink_to(corpus / name)
    return folder


def _subset(rows: list[tuple], names: list[str]) -> list[tuple]:
    # Clip rows by source, source rows by path; without the split (it depends on the set of sources).
    return [r[:13] + r[14:] if len(r) > 13 else r for r in rows if r[1] in names or r[0] in names]


def test_killed_run_resumes_to_the_same_result(first_run: Path, corpus: Path, tmp_path: Path) -> None:
    # Enough clips that the kill lands with device stages done for some and not others.
    names = ["good.mp4", "fps30.mp4", "audio_delayed.mp4", "two_shots.mp4", "corrupt.mp4"]
    raw = _part_of(corpus, tmp_path / "raw", names)
    out = tmp_path / "killed"
    folders = ["--input-dir", str(raw), "--output-dir", str(out)]
    cmd = [sys.executable, "-m", "latentsync_core.data.cli", "preprocess", *folders, *OPTIONS]
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 180
    try:
        while time.time() < deadline and proc.poll() is None:  # wait until the device stages are under way
            time.sleep(0.3)
            if (out / "manifest.sqlite").exists():
                try:
                    (done,) = _rows(out, "SELECT count(*) FROM decisions WHERE stage >= 5")[0]
                except sqlite3.OperationalError:
                    continue
                if done >= 2:
                    break
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()!r}"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole group: coordinator, workers, ffmpeg
        proc.wait()
    assert (out / "work").exists() and _rows(out, "SELECT count(*) FROM clips WHERE status = 'pending'")[0][0] > 0
    assert _run(raw, out) == 0
    report = _report(out)
    resumed = sum(s["processed_this_run"] for s in report["stages"])
    assert 0 < resumed < sum(s["passed"] + s["rejected"] for s in report["stages"])  # finished items were skipped
    assert _subset(_result(out), names) == _subset(_result(first_run), names)
    clips = {p.name for p in (out / "clips").iterdir()}
    assert clips and clips <= {p.name for p in (first_run / "clips").iterdir()}
    assert not (out / "work").exists() and not [p for p in out.rglob("*") if ".part-" in p.name]


def test_changed_settings_are_refused(first_run: Path, corpus: Path, capsys: pytest.CaptureFixture) -> None:
    before = _result(first_run)
    assert _run(corpus, first_run, "--resolution", "512") == 2
    err = capsys.readouterr().err
    assert "error [CONFIG_CHANGED]" in err and "resolution" in err
    assert _result(first_run) == before


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("missing_input", "INPUT_NOT_FOUND"),
        ("no_videos", "NO_INPUT_FILES"),
        ("bad_key", "CONFIG_INVALID"),
        ("bad_value", "CONFIG_INVALID"),
        ("no_gpu", "GPU_UNAVAILABLE"),
        ("official_weights_missing", "WEIGHTS_MISSING"),
        ("official_weights_wrong", "WEIGHTS_INVALID"),
    ],
)
def test_cannot_run_exits_2_with_a_code(
    case: str, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.mp4").write_bytes(b"\0" * 10)
    args = ["preprocess", "--input-dir", str(raw), "--output-dir", str(tmp_path / "out"), "--no-progress"]
    monkeypatch.setenv("LATENTSYNC_WEIGHTS", "demo")
    if case == "missing_input":
        args[2] = str(tmp_path / "nowhere")
    elif case == "no_videos":
        (raw / "a.mp4").unlink()
    elif case == "bad_key":
        args += ["--set", "sync_treshold=3"]
    elif case == "bad_value":
        args += ["--segment-seconds", "0.1"]
    elif case == "no_gpu":
        import torch

        if torch.cuda.is_available():
            pytest.skip("a GPU is present")
        args += ["--gpus", "0"]
    elif case.startswith("official_weights"):
        monkeypatch.setenv("LATENTSYNC_WEIGHTS", "official")
        args += ["--set", f"checkpoint_dir={tmp_path / 'ckpt'}"]
        if case == "official_weights_wrong":
            import torch

            (tmp_path / "ckpt" / "auxiliary").mkdir(parents=True)
            torch.save({"netcnnaud.0.weight": torch.zeros(1)}, tmp_path / "ckpt" / "auxiliary" / "syncnet_v2.model")
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert f"error [{code}]: " in err
    if case.startswith("official_weights"):
        assert str(tmp_path / "ckpt" / "auxiliary" / "syncnet_v2.model") in err
        assert ("LATENTSYNC_WEIGHTS=demo" in err) == (case == "official_weights_missing")


def test_ray_engine_gives_the_local_engines_result(first_run: Path, corpus: Path, tmp_path: Path) -> None:
    """A real local Ray instance (tasks and device actors) on part of the corpus: the same
    decisions as the local engine, and a manifest the local engine resumes from without work."""
    import ray  # noqa: F401  (installed by the set-up: a missing Ray fails, never skips)

    names = ["good.mp4", "corrupt.mp4", "no_face.mp4", "two_shots.mp4"]
    raw = _part_of(corpus, tmp_path / "raw", names)
    out = tmp_path / "ray"
    assert _run(raw, out, "--engine", "ray") == 0
    report = _report(out)
    assert report["run"]["engine"] == "ray" and report["totals"]["clips_kept"] == 4

    assert _subset(_result(out), names) == _subset(_result(first_run), names)
    assert _run(raw, out) == 0  # the local engine finds nothing left to do
    assert all(s["processed_this_run"] == 0 for s in _report(out)["stages"])
