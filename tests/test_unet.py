import json
from pathlib import Path

import pytest
import torch

from latentsync_core.configs.loader import CONFIG_DIR
from latentsync_core.configs.unet import load_unet_config
from latentsync_core.models import CheckpointError, UNet3DConditionModel, load_unet_checkpoint, load_unet_state_dict
from latentsync_core.weights.random_weights import tiny_unet_config, write_random_unet_checkpoint


@pytest.fixture(scope="module")
def tiny_reference(unet_reference: dict) -> dict:
    return unet_reference


def test_full_size_keys_and_shapes_match_the_released_checkpoint(data_dir: Path) -> None:
    manifest = json.loads((data_dir / "stage2_512_manifest.json").read_text())
    cfg = load_unet_config(CONFIG_DIR / "unet" / "stage2_512.yaml").model
    with torch.device("meta"):
        model = UNet3DConditionModel(cfg)
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert ours == manifest["state_dict"]
    assert sum(p.numel() for p in model.parameters()) == manifest["num_parameters"] == 1_267_099_844


def test_output_matches_upstream(tiny_reference: dict) -> None:
    model = UNet3DConditionModel.from_config(tiny_reference["config"])
    model.load_state_dict(tiny_reference["state_dict"], strict=True)
    model.eval()
    with torch.no_grad():
        out = model(
            tiny_reference["sample"],
            tiny_reference["timestep"],
            encoder_hidden_states=tiny_reference["encoder_hidden_states"],
        ).sample
    diff = (out - tiny_reference["output"]).abs().max().item()
    print(f"UNet parity max abs diff: {diff:.3e}")
    assert diff < 1e-4


def test_strict_loader_lists_missing_unexpected_and_misshaped_keys(tiny_reference: dict) -> None:
    model = UNet3DConditionModel.from_config(tiny_reference["config"])
    sd = dict(tiny_reference["state_dict"])
    sd.pop("conv_in.bias")
    sd["extra.weight"] = torch.zeros(1)
    sd["conv_out.weight"] = torch.zeros(5, 32, 3, 3)
    with pytest.raises(CheckpointError) as err:
        load_unet_state_dict(model, sd)
    msg = str(err.value)
    assert "missing keys: conv_in.bias" in msg
    assert "unexpected keys: extra.weight" in msg
    assert "conv_out.weight (5, 32, 3, 3) != (4, 32, 3, 3)" in msg


def test_checkpoint_file_round_trip(tmp_path: Path) -> None:
    cfg = tiny_unet_config()
    path = write_random_unet_checkpoint(tmp_path / "latentsync_unet.pt", cfg, seed=5, global_step=7)
    model, step = load_unet_checkpoint(path, cfg)
    assert step == 7
    saved = torch.load(path)["state_dict"]
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved.items())
    assert not any(p.is_meta for p in model.parameters())


def test_checkpoint_errors_are_clear(tmp_path: Path) -> None:
    cfg = tiny_unet_config()
    with pytest.raises(CheckpointError, match="not found.*download-weights"):
        load_unet_checkpoint(tmp_path / "nope.pt", cfg)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_unet_checkpoint(junk, cfg)
    torch.save({"weights": {}}, tmp_path / "nodict.pt")
    with pytest.raises(CheckpointError, match="no 'state_dict'"):
        load_unet_checkpoint(tmp_path / "nodict.pt", cfg)
    path = write_random_unet_checkpoint(tmp_path / "u.pt", cfg)
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_unet_checkpoint(path, tiny_unet_config(cross_attention_dim=32))


@pytest.mark.parametrize("frames", [1, 5, 16, 24])
def test_any_window_length_up_to_24(tiny_reference: dict, frames: int) -> None:
    model = UNet3DConditionModel.from_config(tiny_reference["config"]).eval()
    model.load_state_dict(tiny_reference["state_dict"])
    x = torch.randn(2, 13, frames, 8, 8)
    ctx = torch.randn(2 * frames, 50, 64)
    with torch.no_grad():
        out = model(x, 500, encoder_hidden_states=ctx).sample
    assert out.shape == (2, 4, frames, 8, 8) and torch.isfinite(out).all()


def test_more_than_24_frames_is_refused(tiny_reference: dict) -> None:
    model = UNet3DConditionModel.from_config(tiny_reference["config"]).eval()
    with pytest.raises(ValueError, match="at most 24 frames"):
        model(torch.randn(1, 13, 25, 8, 8), 1, encoder_hidden_states=torch.randn(25, 50, 64))


def test_batched_windows_equal_separate_windows(tiny_reference: dict) -> None:
    """Stacking windows in the batch dimension (the fast path) changes nothing. Float64,
    because random weights amplify float32 rounding far beyond what separates a bug."""
    model = UNet3DConditionModel.from_config(tiny_reference["config"]).eval()
    model.load_state_dict(tiny_reference["state_dict"])
    model = model.double()
    x = torch.randn(4, 13, 8, 8, 8, dtype=torch.float64)
    ctx = torch.randn(4 * 8, 50, 64, dtype=torch.float64)
    with torch.no_grad():
        together = model(x, 300, encoder_hidden_states=ctx).sample
        apart = torch.cat(
            [model(x[i : i + 1], 300, encoder_hidden_states=ctx[i * 8 : (i + 1) * 8]).sample for i in range(4)]
        )
    assert (together - apart).abs().max() < 1e-10


def test_gradient_checkpointing_gives_the_same_gradients(tiny_reference: dict) -> None:
    def grads(checkpointing: bool) -> torch.Tensor:
        torch.manual_seed(0)
        model = UNet3DConditionModel.from_config(tiny_reference["config"])
        model.load_state_dict(tiny_reference["state_dict"])
        model.enable_gradient_checkpointing(checkpointing)
        out = model(
            tiny_reference["sample"][:, :, :4], 10, encoder_hidden_states=tiny_reference["encoder_hidden_states"][:8]
        )
        out.sample.square().mean().backward()
        return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    plain, checkpointed = grads(False), grads(True)
    assert plain.abs().sum() > 0
    assert torch.allclose(plain, checkpointed, atol=1e-6, rtol=1e-4)


def test_runs_in_bfloat16(tiny_reference: dict) -> None:
    model = UNet3DConditionModel.from_config(tiny_reference["config"]).eval()
    model.load_state_dict(tiny_reference["state_dict"])
    model = model.to(torch.bfloat16)
    with torch.no_grad():
        out = model(
            tiny_reference["sample"].bfloat16(),
            tiny_reference["timestep"],
            encoder_hidden_states=tiny_reference["encoder_hidden_states"].bfloat16(),
        ).sample
    assert out.dtype == torch.bfloat16
    assert (out.float() - tiny_reference["output"]).abs().max() < 0.25


def _frames_like_the_unet(b: int, c: int, f: int) -> torch.Tensor:
    """A (b*f, c, 1, 1) frames tensor with the strides the UNet's reshapes give at 1x1
    spatial size: they read as channels-last too, which picks PyTorch's CPU channels-last
    GroupNorm kernel."""
    x = 3 + torch.randn((b * f, c, 1, 1), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return torch.empty_strided(x.shape, (c, 1, c, c), dtype=torch.float32).copy_(x)


def test_group_norm_keeps_float32_precision_at_1x1_spatial_size() -> None:
    from latentsync_core.models.norm import GroupNorm

    x = _frames_like_the_unet(2, 64, 24)
    norm = GroupNorm(32, 64, eps=1e-6)
    with torch.no_grad():
        got = norm(x).double()
        exact = norm.double()(x.double())
    # Rounding bound of a normalisation computed in float32: a few ulps of |x| / sigma per
    # group (the condition number of x -> (x - mean) / sigma).
    groups = x.double().reshape(len(x), 32, -1)
    sigma = groups.var(-1, unbiased=False).add(1e-6).sqrt()
    bound = 4 * torch.finfo(torch.float32).eps * groups.abs().amax(-1) / sigma
    err = (got - exact).abs().reshape(len(x), 32, -1).amax(-1)
    assert (err <= bound).all(), (err / bound).max()  # nn.GroupNorm on these strides: 575x over


@pytest.mark.parametrize("seed", [0, 1])
def test_float32_output_is_close_to_float64_on_24_frame_windows(tiny_reference: dict, seed: int) -> None:
    """Same weights in float32 and float64: float32 rounding only, within the tolerance the
    reference README gives for a faithful float32 implementation (1e-4). The deepest block
    runs at 1x1 here, where a channels-last GroupNorm gave 1.1e-4 .. 2.8e-4."""
    model = UNet3DConditionModel.from_config(tiny_reference["config"])
    model.load_state_dict(tiny_reference["state_dict"], strict=True)
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((1, 13, 24, 8, 8), generator=gen, dtype=torch.float64)
    ctx = torch.randn((24, 50, 64), generator=gen, dtype=torch.float64)
    t = tiny_reference["timestep"]
    with torch.no_grad():
        out32 = model(x.float(), t, encoder_hidden_states=ctx.float()).sample
        out64 = model.double()(x, t.double(), encoder_hidden_states=ctx).sample
    diff = (out32.double() - out64).abs().max().item()
    print(f"float32 vs float64 max abs diff {diff:.3e}")
    assert diff < 1e-4
