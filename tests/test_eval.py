"""``latentsync eval``'s parts: the Fréchet distance against closed forms, FVD through a
TorchScript I3D with the published file's call signature, the statistics of the report,
the test list and the coded errors of a run that cannot start, StableSyncNet accuracy."""

from __future__ import annotations

import json
import math
import warnings
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from latentsync_core.common.errors import CodedError
from latentsync_core.evaluation.cli import main as eval_main
from latentsync_core.evaluation.frechet import feature_distance, frechet_distance, gaussian_stats
from latentsync_core.evaluation.i3d import I3DFeatures, fvd_window
from latentsync_core.evaluation.stats import paired_difference, sign_flip_p_value, summarize
from latentsync_core.evaluation.testset import read_test_set
from latentsync_core.sync.track import Track

EPS64 = np.finfo(np.float64).eps


class TinyI3D(torch.nn.Module):
    """The call signature of StyleGAN-V's ``i3d_torchscript.pt``: (N, 3, T, H, W) videos ->
    (N, 400) features (``return_features``) or class probabilities."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(3 * 2 * 4 * 4, 400)

    def forward(
        self, videos: torch.Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False
    ) -> torch.Tensor:
        x = videos * 2 - 1 if rescale else videos
        if resize:
            x = F.interpolate(x, size=(x.shape[2], 224, 224), mode="trilinear", align_corners=False)
        feats = self.proj(F.adaptive_avg_pool3d(x, (2, 4, 4)).flatten(1))
        return feats if return_features else torch.softmax(feats, dim=1)


def save_tiny_i3d(path: Path) -> Path:
    torch.manual_seed(0)
    with warnings.catch_warnings():  # TorchScript is deprecated, and it is the published file's format
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(TinyI3D()).save(str(path))
    return path


# -- Fréchet distance -----------------------------------------------------------------------


def test_frechet_distance_of_diagonal_gaussians_is_the_closed_form():
    """Commuting (diagonal) covariances: |mu1-mu2|^2 + sum (sqrt(a_i) - sqrt(b_i))^2."""
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    a, b = rng.uniform(0.1, 4, 8), rng.uniform(0.1, 4, 8)
    expected = float(((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum())
    got = frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    # eigendecompositions of 8x8 matrices of norm <= 4: a few hundred eps of the traces
    assert abs(got - expected) <= 1000 * EPS64 * (a.sum() + b.sum())


def test_frechet_distance_of_non_commuting_2d_gaussians_is_the_closed_form():
    """For 2x2 matrices tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)), and S1 S2 has the eigenvalues
    of S1^(1/2) S2 S1^(1/2): the distance in closed form for covariances that do not commute."""
    s1 = np.array([[2.0, 0.7], [0.7, 1.0]])
    s2 = np.array([[0.5, -0.3], [-0.3, 3.0]])
    mu1, mu2 = np.array([1.0, -2.0]), np.array([0.5, 0.25])
    assert not np.allclose(s1 @ s2, s2 @ s1)
    tr_sqrt = math.sqrt(np.trace(s1 @ s2) + 2 * math.sqrt(np.linalg.det(s1) * np.linalg.det(s2)))
    expected = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)
    assert abs(frechet_distance(mu1, s1, mu2, s2) - expected) <= 100 * EPS64 * (np.trace(s1) + np.trace(s2))


def test_frechet_distance_of_a_set_against_itself_is_zero():
    feats = np.random.default_rng(2).normal(size=(50, 16)) * np.linspace(0.5, 3, 16)
    mu, sigma = gaussian_stats(feats)
    # 2 tr(S) - 2 sum sqrt(eig(S^1/2 S S^1/2)): round-off of order D * eps * tr(S), clipped at 0
    assert 0.0 <= feature_distance(feats, feats) <= 16 * 100 * EPS64 * np.trace(sigma)
    assert feature_distance(feats, feats + 1.0) == pytest.approx(16.0, rel=1e-9)  # a shifted mean only


def test_fewer_than_two_feature_vectors_is_a_coded_error():
    with pytest.raises(CodedError) as err:
        feature_distance(np.ones((1, 4)), np.ones((3, 4)))
    assert err.value.code == "TOO_FEW_VIDEOS"


# -- FVD through a TorchScript I3D ----------------------------------------------------------


def test_fvd_end_to_end_on_a_torchscript_i3d(tmp_path):
    """Saved, loaded with torch.jit.load, called as upstream calls the published file; the
    FVD of two sets of face clips is the Fréchet distance of the module's own features."""
    path = save_tiny_i3d(tmp_path / "i3d_torchscript.pt")
    i3d = I3DFeatures(path)
    rng = np.random.default_rng(3)
    real = rng.integers(0, 256, size=(4, 16, 224, 224, 3), dtype=np.uint8)
    fake = np.clip(real.astype(np.int16) + rng.integers(-40, 40, size=real.shape), 0, 255).astype(np.uint8)
    f_real, f_fake = i3d.features(real), i3d.features(fake)
    assert f_real.shape == (4, 400) and f_real.dtype == np.float64
    torch.manual_seed(0)
    reference = TinyI3D()  # the same seeded weights as the saved module
    with torch.no_grad():
        direct = reference(torch.from_numpy(real).float().permute(0, 4, 1, 2, 3) / 255.0, False, False, True)
    np.testing.assert_allclose(f_real, direct.double().numpy(), rtol=1e-5, atol=1e-6)
    fvd = feature_distance(f_fake, f_real)  # 8 vectors in 400 dimensions: computed in their 8-d span
    full = frechet_distance(*gaussian_stats(f_fake), *gaussian_stats(f_real))  # the 400 x 400 way
    scale = np.trace(gaussian_stats(f_fake)[1]) + np.trace(gaussian_stats(f_real)[1])
    # The full way takes square roots of ~392 eigenvalues that are 0 up to round-off (D eps
    # |S| each), so it may be off by up to 2 D sqrt(D eps |S|); the span way has no such terms.
    assert fvd > 0 and abs(fvd - full) <= 2 * 400 * math.sqrt(400 * EPS64 * scale)
    assert feature_distance(f_real, f_real) <= 400 * 100 * EPS64 * np.trace(gaussian_stats(f_real)[1])


def test_missing_or_broken_i3d_file_is_a_coded_error(tmp_path):
    with pytest.raises(CodedError) as err:
        I3DFeatures(tmp_path / "i3d_torchscript.pt")
    assert err.value.code == "MISSING_I3D" and "--no-fvd" in err.value.message
    (tmp_path / "junk.pt").write_bytes(b"not torchscript")
    with pytest.raises(CodedError) as err:
        I3DFeatures(tmp_path / "junk.pt")
    assert err.value.code == "INVALID_I3D"


@pytest.mark.parametrize(("first", "length", "expected"), [(0, 60, 20), (0, 30, 14), (25, 40, 25), (3, 15, None)])
def test_fvd_window_is_frames_20_to_35_when_the_track_covers_them(first, length, expected):
    track = Track(first=first, boxes=np.zeros((length, 4)), detections=length)
    assert fvd_window(track) == expected


# -- statistics ------------------------------------------------------------------------------


def test_paired_difference_of_identical_values_is_exactly_zero():
    values = np.random.default_rng(4).normal(size=12)
    d = paired_difference(values, values.copy())
    assert d["mean_diff"] == 0.0 and d["mean_diff_ci"] == [0.0, 0.0] and d["p_value"] == 1.0


def test_sign_flip_test_is_exact_for_small_sets():
    """All 2^n sign patterns: with every difference positive only the observed pattern and
    its mirror are as extreme, p = 2 / 2^n."""
    assert sign_flip_p_value(np.array([1.0, 2.0, 3.0, 4.0, 5.0])) == 2 / 32
    big = paired_difference(np.zeros(40), np.full(40, 0.5) + np.random.default_rng(5).normal(0, 0.1, 40))
    assert big["p_value"] < 0.001 and big["mean_diff_ci"][0] > 0.4


def test_summary_intervals_contain_the_statistics():
    values = np.random.default_rng(6).normal(10, 2, 30)
    s = summarize(values)
    assert s["n"] == 30 and s["mean"] == pytest.approx(values.mean())
    for k in ("mean", "median", "p10"):
        assert s[f"{k}_ci"][0] <= s[k] <= s[f"{k}_ci"][1]
    assert summarize([])["mean"] is None


# -- the test list and the errors of a run that cannot start --------------------------------


def test_test_list_forms(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"")
    (tmp_path / "list.txt").write_text("# held-out\na.mp4\n\n/abs/b.mp4\t/abs/c.wav\na.mp4\ta.mp4\tx\n")
    with pytest.raises(CodedError) as err:
        read_test_set(tmp_path / "list.txt")
    assert err.value.code == "INVALID_TEST_SET" and ":5:" in err.value.message
    (tmp_path / "list.txt").write_text("a.mp4\n/abs/b.mp4\t/abs/c.wav\n")
    own, dub = read_test_set(tmp_path / "list.txt")
    assert own.video == tmp_path / "a.mp4" and own.own_audio and own.speech_path == own.video
    assert dub.speech == Path("/abs/c.wav") and not dub.own_audio and own.key != dub.key


def _run(tmp_path: Path, *args: str) -> int:
    return eval_main(
        [
            "eval",
            "run",
            "--unet",
            "demo",
            "--output",
            str(tmp_path / "out"),
            "--weights",
            "demo",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-progress",
            *args,
        ]
    )


def _speech(path: Path) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.zeros(16000, np.int16).tobytes())
    return path


def test_run_refuses_an_empty_list_an_unreadable_pair_and_a_missing_i3d(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    assert _run(tmp_path, "--test-set", str(empty)) == 2
    assert "error [EMPTY_TEST_SET]" in capsys.readouterr().err
    assert _run(tmp_path, "--test-set", str(tmp_path / "absent.txt")) == 2
    assert "error [TEST_SET_NOT_FOUND]" in capsys.readouterr().err

    video = Path(__file__).resolve().parent / "data" / "pipeline_e2e" / "inputs" / "video_1.00s.mp4"
    (tmp_path / "notes.txt").write_text("not media")
    bad = tmp_path / "bad.txt"
    bad.write_text(f"{video}\t{_speech(tmp_path / 's.wav')}\n{video}\t{tmp_path / 'notes.txt'}\n")
    assert _run(tmp_path, "--test-set", str(bad), "--no-fvd") == 2
    err = capsys.readouterr().err
    assert "error [UNREADABLE_PAIR]: line 2" in err and "notes.txt" not in err.split("line 2")[0]

    good = tmp_path / "good.txt"
    good.write_text(f"{video}\t{tmp_path / 's.wav'}\n")
    assert _run(tmp_path, "--test-set", str(good), "--i3d", str(tmp_path / "none.pt")) == 2
    assert "error [MISSING_I3D]" in capsys.readouterr().err
    assert not (tmp_path / "out" / "results.sqlite").exists()  # refused before anything was done


def test_report_of_a_folder_without_results_is_a_coded_error(tmp_path, capsys):
    assert eval_main(["eval", "report", str(tmp_path)]) == 2
    assert "error [NO_RESULTS]" in capsys.readouterr().err


# -- StableSyncNet accuracy ------------------------------------------------------------------

TINY_SYNCNET = """
model:
  audio_encoder: {in_channels: 1, block_out_channels: [32, 32, 128],
                  downsample_factors: [[2, 1], 4, [10, 4]], attn_blocks: [0, 0, 0]}
  visual_encoder: {in_channels: 15, block_out_channels: [32, 32, 128],
                   downsample_factors: [[1, 2], 2, 4], attn_blocks: [0, 0, 0]}
data: {num_frames: 5, resolution: 16, num_val_samples: 24, lower_half: true}
"""


def test_syncnet_accuracy_counts_the_windows_it_classifies(tmp_path, capsys):
    """The command's counts equal the classification of the same seeded windows done here
    with the network and the dataset directly; a missing checkpoint is a coded error."""
    from latentsync_core.configs.syncnet import load_syncnet_config
    from latentsync_core.media.video_io import VideoWriter
    from latentsync_core.models.stable_syncnet import StableSyncNet, load_stable_syncnet
    from latentsync_core.training.syncnet_dataset import SyncNetDataset
    from latentsync_core.training.syncnet_trainer import visual_input

    rng = np.random.default_rng(7)
    clips = []
    for i in range(2):
        wav = _speech(tmp_path / f"c{i}.wav")
        writer = VideoWriter(tmp_path / f"c{i}.mp4", 16, 16, wav, crf=10)
        for level in rng.integers(20, 235, 40):
            writer.write(np.full((16, 16, 3), level, np.uint8))
        writer.close()
        clips.append(tmp_path / f"c{i}.mp4")
    (tmp_path / "list.txt").write_text("".join(f"{c}\n" for c in clips))
    (tmp_path / "cfg.yaml").write_text(TINY_SYNCNET)
    cfg = load_syncnet_config(tmp_path / "cfg.yaml")
    torch.manual_seed(8)
    torch.save({"state_dict": StableSyncNet.from_config(cfg.model).state_dict()}, tmp_path / "sync.pt")
    args = [
        "eval",
        "syncnet-acc",
        "--fileslist",
        str(tmp_path / "list.txt"),
        "--config",
        str(tmp_path / "cfg.yaml"),
        "--samples",
        "20",
        "--seed",
        "3",
        "--device",
        "cpu",
        "--no-progress",
    ]
    assert eval_main([*args, "--syncnet", str(tmp_path / "sync.pt"), "--json", str(tmp_path / "acc.json")]) == 0
    got = json.loads((tmp_path / "acc.json").read_text())

    model = load_stable_syncnet(tmp_path / "sync.pt", cfg.model)
    dataset = SyncNetDataset(clips, cfg.data, 3, tmp_path / "cache" / "mel")
    correct = positives = 0
    with torch.no_grad():
        for i in range(20):
            s = dataset[(0, i)]
            vision, sound = model(visual_input(s["frames"][None], True), s["audio_samples"][None])
            in_sync = bool(s["y"] > 0.5)
            correct += int((float(F.cosine_similarity(vision, sound)) > 0.5) == in_sync)
            positives += in_sync
    assert got["samples"] == 20 and got["accuracy"] == correct / 20
    assert 0 < positives < 20  # both kinds of window were drawn
    assert f"{100 * correct / 20:.2f} %" in capsys.readouterr().out
    assert eval_main([*args, "--syncnet", str(tmp_path / "absent.pt")]) == 2
    assert "error [MISSING_WEIGHTS]" in capsys.readouterr().err


def test_results_of_other_settings_or_another_unet_under_a_name_are_refused(tmp_path):
    from latentsync_core.evaluation.store import ResultsStore

    store = ResultsStore(tmp_path)
    store.check_settings({"params": {"seed": 1}, "weights": "demo"})
    store.check_settings({"params": {"seed": 1}, "weights": "demo"})  # the same: a resumed run
    store.add_model("ft", "/runs/a.pt")
    store.add_model("ft", "/runs/a.pt")
    with pytest.raises(CodedError) as err:
        store.check_settings({"params": {"seed": 2}, "weights": "demo"})
    assert err.value.code == "RESULTS_MISMATCH" and "params" in err.value.message
    with pytest.raises(CodedError) as err:
        store.add_model("ft", "/runs/b.pt")
    assert err.value.code == "RESULTS_MISMATCH"
    store.add_model("base", "/ckpt/latentsync_unet.pt")  # another model joins the comparison
    assert store.models() == [("ft", "/runs/a.pt"), ("base", "/ckpt/latentsync_unet.pt")]
    store.close()
