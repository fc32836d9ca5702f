"""The float8 option (``AccelOptions(fp8=True)``, models/fp8.py) on the CPU: its arithmetic
against the float product, which layers it converts, that the default path is untouched,
and that compiled kernels of the two never share an artifact key. Its speed is a GPU
matter (scripts/bench_fp8.py, NOTES.md)."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from latentsync_core.inference import LipSyncPipeline
from latentsync_core.inference.runners import AccelOptions, UNetRunner
from latentsync_core.models import UNet3DConditionModel
from latentsync_core.models.fp8 import FP8_MIN_IN_FEATURES, Float8Linear, convert_linears_to_fp8, eligible
from latentsync_core.models.loading import ModelBundle, load_models
from latentsync_core.weights.random_weights import tiny_unet_config

# e4m3 keeps 3 mantissa bits: rounding to nearest moves a normal value by at most 2^-4 of
# itself; below the smallest normal (2^-6 of the scale unit) the step is 2^-9 of it.
E4M3_REL = 2.0**-4
E4M3_SUB = 2.0**-10
BF16_REL = 2.0**-8  # the product's bfloat16 result


def _tiny_unet() -> UNet3DConditionModel:
    torch.manual_seed(0)
    return UNet3DConditionModel(tiny_unet_config()).eval()


def test_float8_product_is_within_e4m3_rounding_of_the_exact_one() -> None:
    torch.manual_seed(1)
    lin = nn.Linear(64, 48)
    x = torch.randn(3, 5, 64) * torch.logspace(-3, 1, 64)  # channels of very different sizes
    x[0, 0] = 0.0  # an all-zero row must give the bias alone, not NaN
    with torch.no_grad():
        got = Float8Linear(lin)(x).double()
        exact = nn.functional.linear(x.double(), lin.weight.double(), lin.bias.double())
        # per element: each operand off by <= rel * |v| + sub * (its row's amax / 448) ...
        xs = x.double().abs().amax(-1, keepdim=True) / 448
        ws = lin.weight.double().abs().amax(-1) / 448
        ax = x.double().abs() * E4M3_REL + xs * E4M3_SUB
        aw = lin.weight.double().abs() * E4M3_REL + ws[:, None] * E4M3_SUB
        xd, wd = x.double().abs(), lin.weight.double().abs()
        # ... so the product is off by <= |x|.aw + ax.|w| + ax.aw, then rounded to bfloat16
        bound = xd @ aw.T + ax @ wd.T + ax @ aw.T
        bound = bound + BF16_REL * (exact - lin.bias.double()).abs() + BF16_REL * bound + 1e-7
    assert torch.isfinite(got).all()
    assert ((got - exact).abs() <= bound).all(), float(((got - exact).abs() - bound).max())
    assert torch.allclose(got[0, 0], lin.bias.double(), atol=1e-6)


def test_conversion_takes_the_transformer_linears_of_the_rule_and_only_once() -> None:
    unet = _tiny_unet()
    linears = {n: m for n, m in unet.named_modules() if isinstance(m, nn.Linear)}
    wide = max(m.in_features for m in linears.values())
    done = convert_linears_to_fp8(unet, min_in_features=wide)
    assert done and all(linears[n].in_features >= wide for n in done)
    assert not any("time_emb" in n for n in done)  # one row per sample: left alone
    assert all(isinstance(unet.get_submodule(n), Float8Linear) for n in done)
    rest = convert_linears_to_fp8(unet)  # every other eligible one, then nothing is left
    assert rest and not set(rest) & set(done)
    assert convert_linears_to_fp8(unet) == []
    assert not any(eligible(n, m) for n, m in unet.named_modules())


def test_default_options_leave_the_unet_alone_and_fp8_gives_nearly_the_same_call() -> None:
    unet = _tiny_unet()
    x = torch.randn(2, unet.config.in_channels, 2, 8, 8)
    ctx = torch.randn(4, 50, unet.config.cross_attention_dim)
    t = torch.tensor([500])
    with torch.no_grad():
        before = unet.forward_full(x, t, ctx)[0]
    UNetRunner(unet, AccelOptions())
    assert AccelOptions().fp8 is False and AccelOptions.for_device(torch.device("cpu")).fp8 is False
    assert not any(isinstance(m, Float8Linear) for m in unet.modules())

    runner = UNetRunner(unet, AccelOptions(fp8=True, fp8_min_in_features=0))
    assert sum(isinstance(m, Float8Linear) for m in unet.modules()) > 0
    with torch.no_grad():
        after = runner.full(x, t, ctx)[0]
    assert torch.isfinite(after).all()
    rel = float((after - before).norm() / before.norm())
    # each converted product carries <= ~2 x 2^-4 relative rounding, random in sign
    assert 0 < rel < 0.25


def test_float8_layer_compiles_as_one_graph() -> None:
    lin = Float8Linear(nn.Linear(32, 16))
    x = torch.randn(4, 7, 32)
    compiled = torch.compile(lin, fullgraph=True, dynamic=False, backend="aot_eager")
    with torch.no_grad():
        assert torch.equal(compiled(x), lin(x))


def test_fp8_is_refused_where_float8_products_do_not_run() -> None:
    with torch.device("meta"):
        unet = UNet3DConditionModel(tiny_unet_config())
    with pytest.raises(ValueError, match="fp8 needs"):
        UNetRunner(unet, AccelOptions(fp8=True))
    assert FP8_MIN_IN_FEATURES % 16 == 0


@pytest.fixture(scope="module")
def demo_models(tmp_path_factory: pytest.TempPathFactory) -> ModelBundle:
    root = tmp_path_factory.mktemp("fp8")
    return load_models("demo", Path(root / "none"), root / "cache", device="cpu")


def test_compiled_kernels_of_fp8_get_their_own_artifact_key(demo_models: ModelBundle) -> None:
    plain = LipSyncPipeline(demo_models, accel=AccelOptions()).compile_key_fields()
    assert "fp8" not in plain  # the default key is what it was before the option existed
    eight = replace(demo_models, unet=copy.deepcopy(demo_models.unet))  # converted in place
    fields = LipSyncPipeline(eight, accel=AccelOptions(fp8=True)).compile_key_fields()
    assert fields == {**plain, "fp8": True}
