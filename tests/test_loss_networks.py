"""The frozen loss networks of stage 2: LPIPS (VGG16) and TREPA (VideoMAE-v2).

Narrow random networks stand in for the released weights (which cannot be downloaded here);
the full-size key sets are checked against upstream's definitions, and TREPA against a
vector computed by upstream's own code (tests/data/README.md).
"""

from __future__ import annotations

import json

import pytest
import torch
from reference_data import DATA, load

from latentsync_core.common.errors import CodedError
from latentsync_core.models.videomae import VIT_G_SSV2, VideoMAEConfig, VideoMAEEncoder, parameter_count
from latentsync_core.training.lpips import LPIPSLoss, pack_lpips_weights
from latentsync_core.training.trepa import TREPALoss

NARROW = (4, 8, 8, 16, 16)
TINY_MAE = VideoMAEConfig(
    img_size=16, patch_size=4, num_frames=4, tubelet_size=2, embed_dim=16, depth=2, num_heads=2, mlp_hidden=32,
    num_classes=3,
)  # fmt: skip


def _random_lpips(dtype: torch.dtype = torch.float32) -> LPIPSLoss:
    torch.manual_seed(0)
    model = LPIPSLoss(NARROW)
    with torch.no_grad():  # the published heads are non-negative weights
        for k in range(5):
            getattr(model, f"lin{k}").model[1].weight.abs_()
    return model.to(dtype)


def _images(n: int = 3, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, 3, 32, 32, generator=g, dtype=dtype) * 2 - 1
    y = torch.rand(n, 3, 32, 32, generator=g, dtype=dtype) * 2 - 1
    return x, y


def test_lpips_is_zero_for_identical_images_positive_and_symmetric_otherwise() -> None:
    model = _random_lpips(torch.float64)
    x, y = _images(dtype=torch.float64)
    assert model(x, x.clone()).item() == 0.0
    d_xy, d_yx = model.distances(x, y), model.distances(y, x)
    assert (d_xy > 0).all()
    # Same operations on swapped operands: equal up to float64 rounding of a few sums.
    torch.testing.assert_close(d_xy, d_yx, rtol=1e-12, atol=0.0)
    # A smaller perturbation is closer.
    assert model(x, x + 0.01 * (y - x)).item() < model(x, y).item()


def test_lpips_full_size_keys_are_torchvision_features_and_lpips_heads() -> None:
    with torch.device("meta"):
        model = LPIPSLoss()
    convs = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]  # torchvision vgg16.features conv indices
    expected = {f"features.{i}.{p}" for i in convs for p in ("weight", "bias")}
    expected |= {f"lin{k}.model.1.weight" for k in range(5)}
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert set(shapes) == expected
    assert shapes["features.28.weight"] == (512, 512, 3, 3)
    assert shapes["lin2.model.1.weight"] == (1, 256, 1, 1)


def test_lpips_from_file_round_trip_and_strict_errors(tmp_path) -> None:
    model = _random_lpips()
    path = tmp_path / "lpips_vgg16.pt"
    torch.save({"state_dict": model.state_dict()}, path)
    loaded = LPIPSLoss.from_file(path, NARROW)
    x, y = _images()
    assert torch.equal(loaded.distances(x, y), model.distances(x, y))
    assert not any(p.requires_grad for p in loaded.parameters())

    broken = dict(model.state_dict())
    del broken["lin3.model.1.weight"]
    broken["extra.weight"] = torch.zeros(1)
    torch.save({"state_dict": broken}, path)
    with pytest.raises(CodedError) as err:
        LPIPSLoss.from_file(path, NARROW)
    assert err.value.code == "WEIGHTS_INVALID"
    assert "lin3.model.1.weight" in err.value.message and "extra.weight" in err.value.message

    missing = tmp_path / "nowhere" / "lpips_vgg16.pt"
    with pytest.raises(CodedError) as err:
        LPIPSLoss.from_file(missing, NARROW)
    assert err.value.code == "WEIGHTS_MISSING" and str(missing) in err.value.message


def test_pack_lpips_weights_from_the_two_published_layouts(tmp_path) -> None:
    model = _random_lpips()
    state = model.state_dict()
    torchvision_file = {k: v for k, v in state.items() if k.startswith("features.")}
    torchvision_file["classifier.0.weight"] = torch.zeros(2, 2)  # dropped: LPIPS uses the trunk only
    heads_file = {k: v for k, v in state.items() if k.startswith("lin")}
    torch.save(torchvision_file, tmp_path / "vgg16.pth")
    torch.save(heads_file, tmp_path / "vgg.pth")
    out = pack_lpips_weights(tmp_path / "vgg16.pth", tmp_path / "vgg.pth", tmp_path / "out" / "lpips.pt", NARROW)
    x, y = _images()
    assert torch.equal(LPIPSLoss.from_file(out, NARROW).distances(x, y), model.distances(x, y))


def test_lpips_gradient_reaches_the_input_only() -> None:
    model = _random_lpips()
    x, y = _images()
    x.requires_grad_(True)
    model(x, y).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())


def _random_trepa() -> TREPALoss:
    torch.manual_seed(0)
    loss = TREPALoss(TINY_MAE)
    with torch.no_grad():
        for p in loss.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return loss


def _videos(frames: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    x = torch.rand(2, 3, frames, 24, 20, generator=g) * 2 - 1
    return x, (x + 0.5 * torch.randn(x.shape, generator=g)).clamp(-1, 1)


def test_videomae_full_size_matches_upstreams_checkpoint_layout() -> None:
    manifest = json.loads((DATA / "videomae_vit_g_manifest.json").read_text())
    with torch.device("meta"):
        encoder = VideoMAEEncoder(VIT_G_SSV2)
    shapes = {k: list(v.shape) for k, v in encoder.state_dict().items()}
    assert shapes == manifest["state_dict"]
    assert sum(p.numel() for p in encoder.parameters()) == manifest["num_parameters"] == parameter_count(VIT_G_SSV2)


def test_trepa_matches_upstream_on_a_narrow_network() -> None:
    ref = load("trepa_tiny_a")
    loss = TREPALoss(VideoMAEConfig(**ref["config"]))
    loss.encoder.load_state_dict(ref["state_dict"], strict=True)
    with torch.no_grad():
        features = loss.encoder.forward_features(loss._encoder_input(ref["fake"]))
        value = loss(ref["fake"], ref["real"])
    # float32 on both sides, different summation orders: LayerNorm outputs of size ~1 agree
    # to a few hundred float32 ulps.
    torch.testing.assert_close(features, ref["fake_features"], rtol=0, atol=1e-5)
    # The loss is a mean of squared differences of ~1e-2 between unit vectors: each
    # difference carries ~1e-6 of the features' error, i.e. a relative 1e-4; doubled by the square.
    torch.testing.assert_close(value, ref["loss"], rtol=5e-4, atol=0)


def test_trepa_zero_positive_symmetric_and_gradient_to_input() -> None:
    loss = _random_trepa().double()
    x, y = (v.double() for v in _videos())
    assert loss(x, x.clone()).item() == 0.0
    assert loss(x, y).item() > 0
    torch.testing.assert_close(loss(x, y), loss(y, x), rtol=1e-12, atol=0.0)
    x.requires_grad_(True)
    loss(x, y).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.parameters())


def test_trepa_other_clip_lengths_stretch_the_position_table() -> None:
    encoder = _random_trepa().encoder
    assert encoder.position_table(4).shape == (1, 2 * 4 * 4, 16)
    assert encoder.position_table(10).shape == (1, 5 * 4 * 4, 16)
    x, y = _videos(frames=10)
    assert _random_trepa()(x, y).item() > 0


def test_trepa_from_file_round_trip_and_strict_errors(tmp_path) -> None:
    loss = _random_trepa()
    path = tmp_path / "vit_g_hybrid_pt_1200e_ssv2_ft.pth"
    torch.save({"module": loss.encoder.state_dict()}, path)  # VideoMAE-v2's release layout
    loaded = TREPALoss.from_file(path, TINY_MAE, gradient_checkpointing=True)
    x, y = _videos()
    torch.testing.assert_close(loaded(x, y), loss(x, y), rtol=0, atol=0)
    x.requires_grad_(True)
    loaded(x, y).backward()  # through the checkpointed blocks
    assert x.grad is not None and x.grad.abs().sum() > 0

    broken = dict(loss.encoder.state_dict())
    del broken["blocks.1.attn.v_bias"]
    torch.save({"module": broken}, path)
    with pytest.raises(CodedError) as err:
        TREPALoss.from_file(path, TINY_MAE)
    assert err.value.code == "WEIGHTS_INVALID" and "blocks.1.attn.v_bias" in err.value.message
    with pytest.raises(CodedError) as err:
        TREPALoss.from_file(tmp_path / "absent.pth", TINY_MAE)
    assert err.value.code == "WEIGHTS_MISSING" and "absent.pth" in err.value.message
