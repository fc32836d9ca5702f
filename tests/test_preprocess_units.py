"""The preprocessing pipeline's parts, on known inputs: its config, segment planning, the
sync rule (offset sign and audio shift, end to end through SyncNet scoring with a network
whose answer is known), the quality scorers (HyperIQA's layout and strict loading), the
validation split, atomic publishing and the scheduler's streaming."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from latentsync_core.audio.mel import WINDOW_FRAMES, mel_window_length
from latentsync_core.common.errors import CodedError
from latentsync_core.configs.loader import ConfigError
from latentsync_core.data.config import DEFAULT_PREPROCESS_CONFIG, PreprocessConfig, load_preprocess_config, parse_gpus
from latentsync_core.data.fileslists import assign_splits, read_fileslist
from latentsync_core.data.hyper_iqa import HyperIQA, load_hyper_iqa, preprocess
from latentsync_core.data.items import Outcome, Task, source_id
from latentsync_core.data.layout import Layout
from latentsync_core.data.manifest import Manifest
from latentsync_core.data.progress import StageBars
from latentsync_core.data.scheduler import Scheduler
from latentsync_core.data.segment_io import read_all_frames, read_pcm, write_lossless
from latentsync_core.data.stages.quality import EmbeddedScorer, HyperIQAScorer, make_scorer, quality_model_kind
from latentsync_core.data.stages.segment import plan_segments
from latentsync_core.data.stages.sync import apply_offset, shift_plan, sync_decision, sync_segment
from latentsync_core.media.constants import SAMPLES_PER_FRAME
from latentsync_core.models.checkpoint import CheckpointError
from latentsync_core.storage.atomic import writing

# ---------------------------------------------------------------------------------- config


def test_yaml_lists_every_option_with_its_default() -> None:
    listed = yaml.safe_load(DEFAULT_PREPROCESS_CONFIG.read_text())
    defaults = PreprocessConfig().to_dict()
    assert set(listed) | {"video_extensions"} == set(defaults)
    assert {k: v for k, v in listed.items()} == {k: defaults[k] for k in listed}
    cfg = load_preprocess_config()
    assert (cfg.resolution, cfg.sync_conf_threshold, cfg.max_offset, cfg.segment_seconds) == (256, 3.0, 6, 5.0)
    assert cfg.engine == "local" and cfg.gpus == "all" and cfg.segment_frames == 125


def test_config_rejects_unknown_keys_and_bad_values(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("resolution: 256\nsync_treshold: 3\n")
    with pytest.raises(ConfigError, match="sync_treshold"):
        load_preprocess_config(bad)
    with pytest.raises(ConfigError, match="resolution must be 256 or 512"):
        load_preprocess_config(overrides=["resolution=384"])
    with pytest.raises(ConfigError, match="max_offset"):
        load_preprocess_config(values={"max_offset": 20})
    with pytest.raises(ConfigError, match="engine"):
        load_preprocess_config(values={"engine": "spark"})
    with pytest.raises(ConfigError, match="gpus"):
        load_preprocess_config(values={"gpus": "0,x"})
    with pytest.raises(ConfigError, match="unknown preprocess option"):
        load_preprocess_config(values={"colour": 1})


def test_flags_override_the_file_and_execution_keys_keep_the_fingerprint() -> None:
    cfg = load_preprocess_config(values={"resolution": 512, "workers": None, "segment_seconds": 2.0})
    assert cfg.resolution == 512 and cfg.workers == 0 and cfg.segment_frames == 50
    base = load_preprocess_config()
    assert load_preprocess_config(values={"workers": 7, "gpus": "none"}).fingerprint() == base.fingerprint()
    assert load_preprocess_config(values={"max_offset": 3}).fingerprint() != base.fingerprint()
    assert parse_gpus("all") is None and parse_gpus("none") == [] and parse_gpus("0, 2") == [0, 2]


# -------------------------------------------------------------------------------- segments


def test_segments_cover_shots_and_drop_short_remainders() -> None:
    segs = plan_segments("src", [[0, 260], [260, 300], [300, 410]], segment_frames=125, min_frames=50)
    got = [(s.shot, s.start, s.frames, s.kept) for s in segs]
    assert got == [
        (0, 0, 125, True),
        (0, 125, 125, True),
        (0, 250, 10, False),
        (1, 260, 40, False),
        (2, 300, 110, True),
    ]
    assert len({s.clip_id for s in segs}) == len(segs)
    assert segs[1].start_s == 5.0 and segs[1].end_s == 10.0


def test_source_ids_are_stable_and_distinct() -> None:
    assert source_id("a/b c.mp4") == source_id("a/b c.mp4")
    assert source_id("a/b c.mp4") != source_id("a_b c.mp4")
    assert "/" not in source_id("x/y/z.mov")


# ------------------------------------------------------------------------- the sync rule


def test_shift_plan_moves_the_audio_by_the_offset() -> None:
    frames = np.arange(10)
    pcm = np.repeat(np.arange(10), SAMPLES_PER_FRAME).astype(np.int16)  # sample value = its frame
    for offset in (3, -3, 0):
        out_frames, out_pcm = apply_offset(frames, pcm, offset)
        first, kept, _ = shift_plan(10, offset)
        assert len(out_frames) == kept == 10 - abs(offset) and len(out_pcm) == kept * SAMPLES_PER_FRAME
        audio_of_frame = out_pcm[::SAMPLES_PER_FRAME]
        # Delaying the audio by `offset` frames: the frame shown at t hears the audio of t - offset.
        assert np.array_equal(out_frames - audio_of_frame, np.full(kept, offset))
    with pytest.raises(ValueError):
        shift_plan(5, 5)


def test_sync_decision_is_upstreams_rule() -> None:
    cfg = PreprocessConfig()
    assert sync_decision(3.0, 6, cfg) == "" and sync_decision(5.0, -6, cfg) == ""
    assert sync_decision(2.99, 0, cfg) == "low_sync_confidence"
    assert sync_decision(8.0, 7, cfg) == "offset_too_large" and sync_decision(8.0, -7, cfg) == "offset_too_large"


class EnvelopeSyncNet(torch.nn.Module):
    """A SyncNet whose answer is known: a lip clip embeds as which of its 5 frames are
    bright, an audio window as which of its 5 frames are loud (MFCC 0 is the log energy)."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # score_frames reads device and dtype here

    def forward_lip(self, clips: torch.Tensor) -> torch.Tensor:  # (B, 3, 5, H, W)
        return (clips.float().mean(dim=(1, 3, 4)) > 127).float()

    def forward_aud(self, mfcc: torch.Tensor) -> torch.Tensor:  # (B, 1, 13, 20), 4 MFCC frames per video frame
        # (above 15: a silent frame after a loud one keeps one pre-emphasised loud sample)
        return (mfcc[:, 0, 0, 0::4] > 15).float()


def _blink_clip(frames: int, audio_shift: int, seed: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames white or black at random, noise on the white frames' audio; the audio then
    moved by ``audio_shift`` frames (positive: later)."""
    on = np.random.default_rng(seed).random(frames) < 0.5
    video = np.where(on[:, None, None, None], 255, 0).astype(np.uint8) * np.ones((1, 256, 256, 3), np.uint8)
    noise = np.random.default_rng(seed + 1).normal(0, 6000, frames * SAMPLES_PER_FRAME).clip(-32000, 32000)
    pcm = (noise * np.repeat(on, SAMPLES_PER_FRAME)).astype(np.int16)
    shifted = np.zeros_like(pcm)
    n = audio_shift * SAMPLES_PER_FRAME
    if n >= 0:
        shifted[n:] = pcm[: len(pcm) - n]
    else:
        shifted[:n] = pcm[-n:]
    return video, shifted, on


@pytest.mark.parametrize("audio_shift", [3, -2])
def test_sync_stage_finds_the_offset_and_realigns(tmp_path: Path, audio_shift: int) -> None:
    video, pcm, on = _blink_clip(50, audio_shift)
    aligned = tmp_path / "aligned.mkv"
    write_lossless(aligned, video, 256, pcm)
    cfg = PreprocessConfig(sync_conf_threshold=0.1)
    task = Task(6, "clip", {"aligned": str(aligned), "out": str(tmp_path / "synced.mkv")})
    outcome = sync_segment(task, cfg, EnvelopeSyncNet())
    assert outcome.passed, outcome
    # The audio lags by `audio_shift` frames, so SyncNet's offset is its negative ...
    assert outcome.measurements["offset"] == -audio_shift
    assert outcome.measurements["confidence"] > 0.2
    # ... and after the shift every frame hears its own audio again.
    frames, audio = read_all_frames(tmp_path / "synced.mkv", 256), read_pcm(tmp_path / "synced.mkv")
    assert len(frames) == 50 - abs(audio_shift)
    bright = frames.reshape(len(frames), -1).mean(axis=1) > 127
    loud = np.abs(audio[: len(frames) * SAMPLES_PER_FRAME].reshape(len(frames), -1)).mean(axis=1) > 100
    assert np.array_equal(bright, loud)
    first = max(0, -audio_shift)  # audio early: its first frames' pictures are gone
    assert np.array_equal(bright, on[first : first + len(frames)])


def test_sync_stage_rejects_with_a_reason(tmp_path: Path) -> None:
    video, pcm, _ = _blink_clip(30, 5)
    write_lossless(tmp_path / "a.mkv", video, 256, pcm)
    task = Task(6, "clip", {"aligned": str(tmp_path / "a.mkv"), "out": str(tmp_path / "s.mkv")})
    outcome = sync_segment(task, PreprocessConfig(sync_conf_threshold=0.1, max_offset=4), EnvelopeSyncNet())
    assert not outcome.passed and outcome.reason == "offset_too_large" and outcome.measurements["offset"] == -5
    assert not (tmp_path / "s.mkv").exists()


# ---------------------------------------------------------------------------------- quality


def _face_like(brightness: float = 110.0, blur: float = 0.0, seed: int = 0) -> np.ndarray:
    """Three 256 px frames with a face's range of structure: a gradient, edges, fine texture."""
    import cv2

    y, x = np.mgrid[0:256, 0:256]
    noise = np.random.default_rng(seed).normal(0, 12, (256, 256))
    img = brightness + (y - 128) * 0.5 + 25 * np.sign(np.sin(x / 10.0) * np.sin(y / 10.0)) + noise
    img = cv2.GaussianBlur(img.clip(0, 255).astype(np.uint8), (0, 0), 1.0)
    if blur:
        img = cv2.GaussianBlur(img, (0, 0), blur)
    return np.stack([np.repeat(img[:, :, None], 3, axis=2)] * 3)


def test_embedded_scorer_thresholds() -> None:
    import cv2

    scorer = EmbeddedScorer(PreprocessConfig())
    reason, m = scorer.assess(_face_like())
    assert reason == "" and m["quality_score"] == m["sharpness"] > 8
    assert scorer.assess(_face_like(blur=2.0))[0] == "blurry"
    assert scorer.assess(_face_like(brightness=20))[0] == "too_dark"
    assert scorer.assess(_face_like(brightness=240))[0] == "too_bright"
    flat = (_face_like() // 8 + 100).astype(np.uint8)
    assert EmbeddedScorer(PreprocessConfig(min_sharpness=0)).assess(flat)[0] == "low_contrast"
    # 512 px faces are measured at 256 px: the same face scores about the same.
    big = np.stack([cv2.resize(f, (512, 512), interpolation=cv2.INTER_LANCZOS4) for f in _face_like()])
    assert abs(scorer.assess(big)[1]["sharpness"] - m["sharpness"]) / m["sharpness"] < 0.35


# Upstream's HyperNet(16, 112, 224, 112, 56, 28, 14, 7) (eval/hyper_iqa.py): sha256 of its
# sorted [key, shape] list, key count and total elements, taken once from upstream's code.
HYPERIQA_LAYOUT_SHA256 = "1b84ddf47ceeefd25b05e08fac55542f25aa3bdd6d2f4ce4b21e2008afdd4f2f"
HYPERIQA_KEYS, HYPERIQA_ELEMENTS = 355, 27428542


@pytest.fixture(scope="module")
def hyper_iqa_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return HyperIQA().state_dict()


def test_hyper_iqa_has_upstreams_layout(hyper_iqa_state: dict[str, torch.Tensor]) -> None:
    layout = sorted([k, list(v.shape)] for k, v in hyper_iqa_state.items())
    assert len(layout) == HYPERIQA_KEYS
    assert sum(v.numel() for v in hyper_iqa_state.values()) == HYPERIQA_ELEMENTS
    assert hashlib.sha256(json.dumps(layout).encode()).hexdigest() == HYPERIQA_LAYOUT_SHA256


def test_hyper_iqa_loads_strictly_and_scores(tmp_path: Path, hyper_iqa_state: dict[str, torch.Tensor]) -> None:
    aux = tmp_path / "auxiliary"
    aux.mkdir()
    # Older checkpoints lack BatchNorm step counters: tolerated; anything else is not.
    torch.save(
        {k: v for k, v in hyper_iqa_state.items() if "num_batches_tracked" not in k}, aux / "koniq_pretrained.pkl"
    )
    cfg = PreprocessConfig(checkpoint_dir=str(tmp_path))
    assert quality_model_kind(cfg) == "hyperiqa"
    scorer = make_scorer(cfg)
    assert isinstance(scorer, HyperIQAScorer)
    reason, m = scorer.assess(_face_like())
    assert np.isfinite(m["quality_score"]) and reason in ("", "low_quality_score")
    x = preprocess(_face_like())
    assert x.shape == (3, 3, 224, 224)
    broken = dict(hyper_iqa_state)
    broken["extra.weight"] = torch.zeros(1)
    del broken["fc5b_fc.bias"]
    torch.save(broken, tmp_path / "bad.pkl")
    with pytest.raises(CheckpointError, match=r"bad\.pkl.*fc5b_fc\.bias"):
        load_hyper_iqa(tmp_path / "bad.pkl")
    assert quality_model_kind(PreprocessConfig(checkpoint_dir=str(tmp_path / "none"))) == "embedded"


# ------------------------------------------------------------------------ splits, layout


def test_validation_split_is_by_source_and_stable() -> None:
    paths = [f"speaker{i}/take.mp4" for i in range(200)]
    splits = assign_splits(paths, 0.1)
    assert 5 <= sum(v == "val" for v in splits.values()) <= 40
    more = assign_splits(paths + [f"new{i}.mp4" for i in range(50)], 0.1)
    assert all(more[p] == splits[p] for p in paths)  # adding sources moves none
    assert list(assign_splits(["a.mp4", "b.mp4"], 0.05).values()).count("val") == 1
    assert set(assign_splits(["a.mp4", "b.mp4"], 0.0).values()) == {"train"}


def test_fileslists_read_back_as_written(tmp_path: Path) -> None:
    """The one reader of the lists: blank lines ignored, a relative path is relative to the
    list's folder (not to the working directory), a missing list is NO_TRAINING_DATA."""
    lists = tmp_path / "data"
    lists.mkdir()
    (lists / "fileslist_train.txt").write_text(f"{tmp_path / 'a.mp4'}\n\n  clips/b.mp4  \n")
    assert read_fileslist(lists / "fileslist_train.txt") == [tmp_path / "a.mp4", lists / "clips" / "b.mp4"]
    with pytest.raises(CodedError) as err:
        read_fileslist(lists / "fileslist_val.txt")
    assert err.value.code == "NO_TRAINING_DATA" and "fileslist_val.txt" in err.value.message
    assert read_fileslist(lists / "fileslist_val.txt", missing_ok=True) == []


def test_mel_window_length_is_upstreams() -> None:
    # ceil(F / 5 * 16) mel frames (80 per second) under F video frames (25 per second).
    assert [mel_window_length(f) for f in (5, 16, 17, 1)] == [16, WINDOW_FRAMES, 55, 4] == [16, 52, 55, 4]


def test_writing_publishes_only_complete_files(tmp_path: Path) -> None:
    final = tmp_path / "x" / "out.mp4"
    with pytest.raises(RuntimeError), writing(final) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert not final.exists() and not list(final.parent.iterdir())
    with writing(final) as tmp:
        assert tmp.suffix == ".mp4" and tmp != final
        tmp.write_bytes(b"whole")
    assert final.read_bytes() == b"whole"
    layout = Layout(tmp_path)
    layout.create()
    (layout.work / f"a{'.part-1-abc'}.mkv").write_bytes(b"")
    assert layout.remove_partials() == 1


# ------------------------------------------------------------------------ streaming


def test_segments_reach_the_devices_while_other_sources_wait(tmp_path: Path) -> None:
    """Stage order is per item, not per dataset: one source's segments are ready for the
    device workers as soon as its shots are known, before any other source is resampled."""
    layout = Layout(tmp_path / "out")
    layout.create()
    manifest = Manifest(layout.manifest)
    manifest.add_sources([(f"s{i}", f"s{i}.mp4", f"/raw/s{i}.mp4", 1) for i in range(3)])
    cfg = PreprocessConfig(segment_seconds=2, min_segment_seconds=1, max_pending_segments=4)
    sched = Scheduler(cfg, layout, manifest, manifest.start_run("local", 1, ["cpu"]), StageBars(False))
    sched.start()
    first = sched.take_cpu(1)
    assert [(t.stage, t.item_id) for t in first] == [(1, "s0")]
    sched.on_outcome(first[0], Outcome(1, "s0", True, "", {"duration": 6.0}))
    (task2,) = sched.take_cpu(1)
    folder = layout.resampled("s0")
    folder.mkdir(parents=True)
    (folder / "video.mp4").write_bytes(b"x")
    (folder / "audio.wav").write_bytes(b"x")
    sched.on_outcome(
        task2, Outcome(2, "s0", True, "", {"frames": 150, "width": 64, "height": 64, "audio_samples": 150 * 640})
    )
    (task3,) = sched.take_cpu(1)
    sched.on_outcome(task3, Outcome(3, "s0", True, "", {"shots": [[0, 150]], "frames": 150}))
    device = sched.take_device()
    assert [t.stage for t in device] == [5, 5, 5]  # three 2 s segments, while s1 and s2 are untouched
    assert sched.decided.get(("s1", 1)) is None and len(sched.new_sources) == 2
    # Back-pressure: with 3 segments pending on the devices, at most one more source starts.
    assert [t.item_id for t in sched.take_cpu(4)] == ["s1"]
    manifest.close()


def test_missing_intermediates_are_made_again(tmp_path: Path) -> None:
    """A resumed run whose work/ folder was deleted: a segment that had passed alignment
    steps back to stage 5, and as its resampled source is gone too, stage 2 is re-made
    first (without re-deciding the source)."""
    layout = Layout(tmp_path / "out")
    layout.create()
    manifest = Manifest(layout.manifest)
    manifest.add_sources([("s0", "s0.mp4", "/raw/s0.mp4", 1)])
    run = manifest.start_run("local", 1, ["cpu"])
    made = {"frames": 50, "width": 64, "height": 64, "audio_samples": 50 * 640}
    manifest.record(Outcome(1, "s0", True, "", {"duration": 2.0}), run)
    manifest.record(Outcome(2, "s0", True, "", made), run)
    manifest.record(Outcome(3, "s0", True, "", {"shots": [[0, 50]], "frames": 50}), run)
    (seg,) = plan_segments("s0", [[0, 50]], 50, 25)
    manifest.add_segments("s0", [seg], run)
    manifest.record(Outcome(5, seg.clip_id, True, "", {"face_size": 80.0}), run)
    sched = Scheduler(PreprocessConfig(), layout, manifest, run, StageBars(False))
    sched.start()  # nothing under work/: no aligned segment, no resampled source
    (remake,) = sched.take_cpu(4)
    assert (remake.stage, remake.item_id) == (2, "s0") and sched.take_device() == []
    folder = layout.resampled("s0")
    folder.mkdir(parents=True)
    (folder / "video.mp4").write_bytes(b"x")
    (folder / "audio.wav").write_bytes(b"x")
    sched.on_outcome(remake, Outcome(2, "s0", True, "", made))
    (again,) = sched.take_device()
    assert (again.stage, again.item_id) == (5, seg.clip_id)
    assert sched.sources["s0"]["status"] == "segmented"  # stage 3 and 4 were not redone
    manifest.close()
