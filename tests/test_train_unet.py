"""``latentsync train unet`` / ``train export`` on CPU with a tiny model: the stage-2
fine-tune path (noise + SyncNet loss), exact resume, strict export, clear checkpoint
errors, validation by sync score. Data: face clips cut from the bundled talking head."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from latentsync_core.configs.loader import CONFIG_DIR
from latentsync_core.configs.unet import load_unet_config
from latentsync_core.models.checkpoint import load_unet_checkpoint
from latentsync_core.models.loading import load_models
from latentsync_core.models.unet import UNet3DConditionModel
from latentsync_core.training import cli
from latentsync_core.training.checkpoints import read_state
from latentsync_core.training.distributed import init_distributed
from latentsync_core.training.unet_models import WeightSource, select_trainable
from latentsync_core.training.unet_trainer import TrainOptions, UNetTrainer
from tests.train_helpers import make_data, make_weights, write_config


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: on the shared 2-core machine two threads mostly wait on each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_data(tmp_path_factory.mktemp("data"), train=[(0.0, 1.4)], val=[(5.0, 0.6)])


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_weights(tmp_path_factory.mktemp("weights"))


def trainer(config: Path, data: Path, weights: Path, run: Path, **kw) -> UNetTrainer:
    options = TrainOptions(data, run, WeightSource("official", weights), progress=False, validate=False, **kw)
    return UNetTrainer(load_unet_config(config), options, init_distributed("cpu"))


def train_cli(*args: str) -> int:
    return cli.main(["train", "unet", "--no-progress", *args])


STAGE1 = {
    "model__use_motion_module": False,
    "pixel_space_supervise": False,
    "use_syncnet": False,
    "trainable_modules": [],
    "ckpt__resume_ckpt_path": "",
}


@pytest.mark.parametrize(("stage", "overrides", "steps"), [("stage2", {}, 10), ("stage1", STAGE1, 8)])
def test_loss_goes_down_when_overfitting_one_clip(tmp_path, data, weights, stage, overrides, steps):
    """The trainer's own steps on one batch (a window of the one clip, its noise and
    timestep): the noise MSE falls well under 1, what predicting zeros scores against
    unit-variance noise, and the whole objective falls too. Stage 2 fine-tunes the motion
    modules and attention of a released UNet with the sync loss; stage 1 trains a random
    UNet without motion modules on the noise loss alone."""
    config = write_config(tmp_path / "cfg.yaml", weights, optimizer__lr=3e-3, **overrides)
    t = trainer(config, data, weights, tmp_path / "run")
    batch = next(iter(t.loader(0, 1)))
    losses = [t.train_step(batch) for _ in range(steps)]
    if stage == "stage2":
        assert all(math.isfinite(v["sync"]) and v["sync"] > 0 for v in losses)  # the sync loss ran
    else:
        assert "sync" not in losses[0] and len(t.trainable) == len(list(t.unet.parameters()))
    last = losses[-3:]
    assert sum(v["recon"] for v in last) / 3 < 0.8, [round(v["recon"], 3) for v in losses]
    assert sum(v["loss"] for v in last) / 3 < 0.7 * losses[0]["loss"], [round(v["loss"], 3) for v in losses]
    assert t.step == steps


@pytest.mark.parametrize(
    ("name", "millions", "kinds"),
    [
        ("stage2_512", 674.79, ("motion_modules.", "attentions.")),
        ("stage2_efficient", 284.66, ("motion_modules.", "attn2.")),
        ("stage1", 849.96, ("",)),
    ],
)
def test_trainable_parameters_follow_the_config(name, millions, kinds):
    """Full-size models (on the meta device: no memory): stage 2 trains motion modules and
    attention (675 M of 1.27 B), the efficient config audio cross-attention and the
    decoder's motion modules, stage 1 everything."""
    cfg = load_unet_config(CONFIG_DIR / "unet" / f"{name}.yaml")
    with torch.device("meta"):
        unet = UNet3DConditionModel(cfg.model)
    chosen = select_trainable(unet, cfg)
    assert round(sum(p.numel() for p in chosen) / 1e6, 2) == millions
    names = [n for n, p in unet.named_parameters() if p.requires_grad]
    assert len(names) == len(chosen) and all(any(k in n for k in kinds) for n in names)
    frozen = [n for n, p in unet.named_parameters() if not p.requires_grad]
    assert not any(any(k in n for k in kinds) for n in frozen) if kinds != ("",) else not frozen


def test_resume_gives_bit_identical_parameters(tmp_path, data, weights):
    config = write_config(tmp_path / "cfg.yaml", weights)
    straight = trainer(config, data, weights, tmp_path / "straight", max_steps=3).run()
    first = trainer(config, data, weights, tmp_path / "resumed", max_steps=1).run()
    assert first.step == 1
    torch.manual_seed(999)  # the resumed run must restore, not inherit, the random state
    second = trainer(config, data, weights, tmp_path / "resumed", max_steps=3, resume=True).run()
    assert second.step == 3 and len(second.losses) == 2
    assert [v["loss"] for v in first.losses + second.losses] == [v["loss"] for v in straight.losses]
    a, b = read_state(straight.last_state), read_state(second.last_state)
    assert a.step == b.step == 3
    assert a.unet.keys() == b.unet.keys()
    assert all(torch.equal(a.unet[k], b.unet[k]) for k in a.unet)
    moments = [(s["exp_avg"], s["exp_avg_sq"]) for s in a.optimizer["state"].values()]
    resumed = [(s["exp_avg"], s["exp_avg_sq"]) for s in b.optimizer["state"].values()]
    assert all(torch.equal(x, y) and torch.equal(u, v) for (x, u), (y, v) in zip(moments, resumed, strict=True))
    mid = read_state(first.last_state).unet
    changed = [k for k in a.unet if not torch.equal(a.unet[k], mid[k])]
    assert changed and all(("motion_modules." in k or "attentions." in k) for k in changed)  # stage 2's selection


def test_validation_export_and_strict_load(tmp_path, data, weights, capsys):
    config = write_config(tmp_path / "cfg.yaml", weights, validation_steps=2)
    run = tmp_path / "run"
    args = ["--config", str(config), "--data", str(data), "--output", str(run), "--checkpoint-dir", str(weights)]
    assert train_cli(*args, "--max-steps", "2") == 0
    state = read_state(run / "checkpoints" / "best.pt")
    record = state.history["validations"][0]
    assert record["step"] == 2 and record["clips_scored"] == 1
    assert math.isfinite(record["lse_c"]) and record["lse_d"] > 0
    assert state.history["best_lse_c"] == record["lse_c"]
    assert Path(record["clips"][0]["output"]).is_file()
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))

    exported = tmp_path / "ckpt" / "latentsync_unet.pt"
    assert cli.main(["train", "export", str(run), "--output", str(exported)]) == 0
    cfg = load_unet_config(config)
    unet, step = load_unet_checkpoint(exported, cfg.model)  # the service's strict loader
    assert step == 2
    assert all(torch.equal(v, state.unet[k]) for k, v in unet.state_dict().items())
    # The whole inference loading path, with the exported UNet in the official layout.
    folder = exported.parent
    for name in ("sd-vae-ft-mse", "whisper"):
        (folder / name).symlink_to(weights / name)
    bundle = load_models("official", folder, tmp_path / "cache", unet_config_path=config, device="cpu")
    assert bundle.resolution == 64 and bundle.weights_kind == "official"


def test_checkpoint_with_wrong_keys_is_a_clear_error(tmp_path, data, weights, capsys):
    config = write_config(tmp_path / "cfg.yaml", weights)
    released = torch.load(weights / "latentsync_unet.pt", weights_only=True)
    missing = next(k for k in released["state_dict"] if "motion_modules" in k)
    del released["state_dict"][missing]
    broken = tmp_path / "broken_unet.pt"
    torch.save(released, broken)
    run = tmp_path / "run"
    base = ["--config", str(config), "--data", str(data), "--output", str(run), "--checkpoint-dir", str(weights)]
    assert train_cli(*base, "--set", f"ckpt.resume_ckpt_path={broken}", "--max-steps", "1") == 2
    err = capsys.readouterr().err
    assert "error [CHECKPOINT_MISMATCH]" in err and "1 missing keys" in err and missing in err

    # A training state with an extra key, given to --resume.
    assert train_cli(*base, "--max-steps", "1", "--no-validation") == 0
    state_path = run / "checkpoints" / "state-00000001.pt"
    raw = torch.load(state_path, weights_only=True)
    raw["unet"]["extra.weight"] = torch.zeros(1)
    torch.save(raw, state_path)
    capsys.readouterr()
    assert train_cli(*base, "--max-steps", "2", "--resume", "--no-validation") == 2
    err = capsys.readouterr().err
    assert "error [CHECKPOINT_MISMATCH]" in err and "unexpected keys: extra.weight" in err and str(state_path) in err

    assert train_cli(*base, "--max-steps", "2", "--resume", "--output", str(tmp_path / "empty")) == 2
    assert "error [NOTHING_TO_RESUME]" in capsys.readouterr().err
    assert train_cli(*base, "--max-steps", "2", "--no-validation") == 2  # a run's states are never overwritten
    assert "error [RUN_EXISTS]" in capsys.readouterr().err

    # A loss with a weight needs its network's file; the error names it (weight 0 loads nothing).
    lpips = tmp_path / "no" / "lpips_vgg16.pt"
    other = ["--output", str(tmp_path / "lpips"), "--set", "run.perceptual_loss_weight=0.1", "--set"]
    assert train_cli(*base, *other, f"ckpt.lpips_path={lpips}", "--max-steps", "1") == 2
    err = capsys.readouterr().err
    assert "error [LOSS_WEIGHTS_MISSING]" in err and str(lpips) in err


def test_samples_are_functions_of_their_position(tmp_path, data, weights):
    """Windows of FRAMES frames with a non-overlapping reference from the same clip, the
    inference code's audio tokens and the mel window under them; the same position gives
    the same sample, and the positions of a global batch do not depend on the world size."""
    from latentsync_core.audio.mel import mel_windows
    from latentsync_core.audio.whisper_features import WhisperFeatureExtractor
    from latentsync_core.data.fileslists import read_fileslist
    from latentsync_core.training.audio_cache import AudioFeatureCache
    from latentsync_core.training.unet_dataset import (
        DatasetOptions,
        StepBatchSampler,
        UNetWindowDataset,
        read_frames,
        to_pixels,
    )
    from tests.train_helpers import FRAMES

    clips = read_fileslist(data / "fileslist_train.txt")
    cache = AudioFeatureCache(tmp_path / "cache", weights / "whisper" / "tiny.pt")
    ds = UNetWindowDataset(clips, DatasetOptions(64, FRAMES, seed=7, with_mel=True), cache)
    frames = to_pixels(read_frames(clips[0], 64))
    features = WhisperFeatureExtractor(weights / "whisper" / "tiny.pt").features(clips[0])
    starts = set()
    for position in range(6):
        s = ds[position]
        start, gt, ref = s["start"], s["gt"], s["ref"]
        starts.add(start)
        assert torch.equal(gt, frames[start : start + FRAMES])
        ref_start = next(i for i in range(len(frames) - FRAMES + 1) if torch.equal(ref, frames[i : i + FRAMES]))
        assert abs(ref_start - start) >= FRAMES
        assert torch.equal(s["audio"], WhisperFeatureExtractor.chunks(features, 25, start=start, count=FRAMES))
        assert torch.equal(s["mel"], torch.from_numpy(mel_windows(cache.mel(clips[0]), [start], 26)[0]))
        assert torch.equal(ds[position]["gt"], gt)  # a pure function of the position
    assert len(starts) > 1
    one = list(StepBatchSampler(2, 3, 5))
    two = [list(StepBatchSampler(1, 3, 5, rank=r, world_size=2)) for r in (0, 1)]
    assert one == [[6, 7], [8, 9]] and [a + b for a, b in zip(*two, strict=True)] == one


def test_sync_loss_is_float32_bce_outside_autocast() -> None:
    """CUDA autocast refuses binary_cross_entropy (the first GPU run of stage 2 failed so):
    the loss must compute it in float32 with autocast off, equal to a float64 evaluation."""
    from latentsync_core.training.unet_losses import sync_loss

    gen = torch.Generator().manual_seed(0)
    vision, audio = torch.rand(4, 32, generator=gen), torch.rand(4, 32, generator=gen)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = sync_loss(vision, audio)
    assert loss.dtype == torch.float32
    sims = torch.nn.functional.cosine_similarity(vision.double(), audio.double())
    expected = -torch.log(sims).mean()
    assert abs(loss.item() - expected.item()) <= 64 * torch.finfo(torch.float32).eps * expected.item()


def test_stage2_lpips_loss_loads_from_its_file_and_stays_frozen(tmp_path, data, weights):
    """The pixel-space LPIPS term of stage 2 (on the decoded one-step x0 estimate's lower
    half): the full-size network loads strictly from the config's file, contributes a
    finite positive loss, and its weights never change. (TREPA goes through the same
    loader; its full-size ViT-g is too large for a CPU test, its module is tested alone.)"""
    from latentsync_core.training.lpips import LPIPSLoss

    torch.manual_seed(3)
    net = LPIPSLoss()
    with torch.no_grad():  # the published heads are non-negative
        for k in range(5):
            getattr(net, f"lin{k}").model[1].weight.abs_()
    lpips_file = tmp_path / "lpips_vgg16.pt"
    torch.save({"state_dict": net.state_dict()}, lpips_file)
    config = write_config(tmp_path / "cfg.yaml", weights, perceptual_loss_weight=0.1, ckpt__lpips_path=str(lpips_file))
    t = trainer(config, data, weights, tmp_path / "run")
    before = {k: v.clone() for k, v in t.lpips.state_dict().items()}
    batch = next(iter(t.loader(0, 1)))
    values = [t.train_step(batch) for _ in range(2)]
    assert all(math.isfinite(v["lpips"]) and v["lpips"] > 0 for v in values), values
    assert all(torch.equal(before[k], v) for k, v in t.lpips.state_dict().items())


def test_run_checkpoints_are_listed_pruned_and_guarded(tmp_path):
    """training.checkpoints, both trainers' file rules: steps in order, the oldest beyond
    keep_last pruned (SyncNet keeps all), prefixes apart, no overwrite without --resume."""
    from latentsync_core.common.errors import CodedError
    from latentsync_core.training.checkpoints import SYNCNET_PREFIX, CheckpointDir, read_checkpoint_file

    unet, syncnet = CheckpointDir(tmp_path, keep_last=2), CheckpointDir(tmp_path, None, SYNCNET_PREFIX)
    assert unet.resume_point(resume=False, required=True) is None  # a new run
    with pytest.raises(CodedError) as err:
        unet.resume_point(resume=True, required=True)
    assert err.value.code == "NOTHING_TO_RESUME"
    assert syncnet.resume_point(resume=True, required=False) is None  # SyncNet: a new run
    for step in (10, 2, 30):
        unet.save(step, {"step": torch.tensor(step)})
        syncnet.save(step, {"step": torch.tensor(step)})
    assert [s for s, _ in unet.saved()] == [10, 30] and unet.latest() == tmp_path / "checkpoints/state-00000030.pt"
    assert [s for s, _ in syncnet.saved()] == [2, 10, 30]
    assert int(read_checkpoint_file(unet.latest())["step"]) == 30
    assert not list(unet.root.glob("*.part-*"))
    with pytest.raises(CodedError) as err:
        syncnet.resume_point(resume=False, required=False)
    assert err.value.code == "RUN_EXISTS"
    assert syncnet.resume_point(resume=True, required=False) == syncnet.path(30)
    unet.latest().write_bytes(b"not a checkpoint")
    with pytest.raises(CodedError) as err:
        read_checkpoint_file(unet.latest())
    assert err.value.code == "TRAIN_STATE_UNREADABLE"
