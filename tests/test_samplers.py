"""The samplers (``samplers.py``): ``ddim`` (default, upstream's), ``dpmpp_2m`` and ``unipc``,
the ``quality`` preset and their coded errors.

Numeric checks use float64 references and bounds from float32 rounding (``Bounded``): the
noise schedule and a whole DPM-Solver++ 2M run with a linear noise model, whose exact
result is known in closed form up to float64 rounding. The window-split identity for
these samplers is in ``test_multi_device.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from latentsync_core.common.errors import CodedError
from latentsync_core.configs.scheduler import load_scheduler_config
from latentsync_core.inference import LipSyncParams, LipSyncPipeline
from latentsync_core.inference.conditioning import Conditioning
from latentsync_core.inference.denoise import Denoiser
from latentsync_core.inference.params import QUALITY_PRESETS, apply_quality, check_quality
from latentsync_core.inference.samplers import Sampler, build_scheduler
from latentsync_core.media.probe import probe_video
from latentsync_core.models.loading import ModelBundle, load_models
from tests.media_helpers import make_audio, make_clip, read_frames

MULTISTEP = ("dpmpp_2m", "unipc")
U = 2.0**-24  # float32 unit roundoff: a correctly rounded operation is off by at most U relative
U_LIBM = 2 * U  # exp and log: within 1 ulp (SLEEF's u10 functions, CUDA's expf/logf), i.e. 2U relative
NOOP = lambda *_: None  # noqa: E731


# ---- parameters, preset and their errors ----------------------------------------------
def test_bad_sampler_and_quality_are_coded_errors() -> None:
    with pytest.raises(CodedError) as err:
        LipSyncParams(sampler="euler").validate()
    assert err.value.code == "INVALID_SAMPLER" and "dpmpp_2m" in err.value.message
    with pytest.raises(CodedError) as err:
        Sampler(load_scheduler_config(), "DDIM", 10)  # names are exact
    assert err.value.code == "INVALID_SAMPLER"
    with pytest.raises(CodedError) as err:
        check_quality("turbo")
    assert err.value.code == "INVALID_QUALITY" and "fast" in err.value.message
    for quality, given, code in [
        ("best", {}, "INVALID_QUALITY"),
        (None, {"sampler": "dpm"}, "INVALID_SAMPLER"),
        ("fast", {"sampler": ""}, "INVALID_SAMPLER"),
        ("fast", {"inference_steps": 0}, "INVALID_PARAMETER"),
    ]:
        with pytest.raises(CodedError) as err:
            apply_quality(quality, given)
        assert err.value.code == code
    with pytest.raises(TypeError):  # a caller's typo is a bug, not a request error
        apply_quality("fast", {"steps": 10})
    for name in ("ddim", "dpmpp_2m", "unipc"):
        LipSyncParams(sampler=name).validate()


def test_quality_preset_fills_only_what_the_request_leaves_unset() -> None:
    settings = {"inference_steps": 25, "guidance_scale": 2.0, "seed": 5, "enable_deepcache": False}
    untouched = {"face": None, "sync_mode": "bounce"}  # parameters no preset sets: their defaults
    exact = apply_quality(None, {}, settings)
    assert exact == {**settings, "sampler": "ddim", **untouched} == apply_quality("exact", {"sampler": None}, settings)
    fast = apply_quality("fast", {"seed": None}, settings)
    preset = {"inference_steps": 10, "enable_deepcache": True, "sampler": "dpmpp_2m"}
    assert fast == {**settings, **preset, **untouched}
    own = apply_quality("fast", {"inference_steps": 20, "enable_deepcache": False, "sampler": "unipc"}, settings)
    assert (own["inference_steps"], own["enable_deepcache"], own["sampler"]) == (20, False, "unipc")
    library = apply_quality("exact", {"sampler": "unipc", "inference_steps": 10})  # no service settings
    assert library == {
        "inference_steps": 10,
        "guidance_scale": 1.5,
        "seed": 1247,
        "enable_deepcache": False,
        "sampler": "unipc",
        **untouched,
    }
    assert set(QUALITY_PRESETS["fast"]) <= set(fast)


def test_cli_rejects_a_bad_sampler_or_quality_before_loading_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``latentsync infer`` as parsed and run by its entry point (in this process: no model
    is loaded before the check, and a fresh interpreter would only add seconds)."""
    from server.cli import main

    monkeypatch.setenv("LATENTSYNC_WEIGHTS", "demo")
    monkeypatch.setenv("LATENTSYNC_DEVICE", "cpu")
    monkeypatch.setenv("LATENTSYNC_DATA_DIR", str(tmp_path))
    base = ["infer", "--video", "v.mp4", "--audio", "a.wav", "--output", str(tmp_path / "o.mp4")]
    for extra, code in [
        (["--sampler", "euler"], "INVALID_SAMPLER"),
        (["--quality", "turbo", "--sampler", "unipc"], "INVALID_QUALITY"),
        (["--quality", "fast", "--sampler", "ddim2"], "INVALID_SAMPLER"),
    ]:
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert f"error [{code}]:" in err and "must be one of" in err, err
    assert not list(tmp_path.rglob("demo-weights-*"))  # it stopped before any model was built


# ---- the noise schedule against float64 --------------------------------------------------
@dataclass(frozen=True)
class Bounded:
    """A quantity computed in float32: ``v`` its value in float64 arithmetic, ``e`` a bound
    on how far the float32 computation of the same operations can be from ``v`` (each
    operation adds at most U of its result's size, a libm function U_LIBM; errors of the
    operands propagate at their worst)."""

    v: float
    e: float

    @staticmethod
    def const(c: float) -> Bounded:
        return Bounded(c, abs(c - float(np.float32(c))))  # rounded to float32 where it is used

    @staticmethod
    def _lift(x: Bounded | float) -> Bounded:
        return x if isinstance(x, Bounded) else Bounded.const(x)

    @staticmethod
    def _round(v: float, carried: float, unit: float = U) -> Bounded:
        return Bounded(v, carried + unit * (abs(v) + carried))

    def __add__(self, other: Bounded | float) -> Bounded:
        o = self._lift(other)
        return self._round(self.v + o.v, self.e + o.e)

    def __radd__(self, other: float) -> Bounded:
        return self + other

    def __neg__(self) -> Bounded:
        return Bounded(-self.v, self.e)

    def __sub__(self, other: Bounded | float) -> Bounded:
        return self + -self._lift(other)

    def __rsub__(self, other: float) -> Bounded:
        return self._lift(other) - self

    def __mul__(self, other: Bounded | float) -> Bounded:
        o = self._lift(other)
        return self._round(self.v * o.v, abs(self.v) * o.e + abs(o.v) * self.e + self.e * o.e)

    def __rmul__(self, other: float) -> Bounded:
        return self * other

    def __truediv__(self, other: Bounded | float) -> Bounded:
        o = self._lift(other)
        assert abs(o.v) > o.e, "divisor's bound includes 0"
        v = self.v / o.v
        return self._round(v, (self.e + abs(v) * o.e) / (abs(o.v) - o.e))

    def __rtruediv__(self, other: float) -> Bounded:
        return self._lift(other) / self

    def sqrt(self) -> Bounded:
        v = math.sqrt(self.v)
        return self._round(v, v - math.sqrt(max(self.v - self.e, 0.0)), U_LIBM)

    def exp(self) -> Bounded:
        v = math.exp(self.v)
        return self._round(v, v * math.expm1(self.e), U_LIBM)

    def log(self) -> Bounded:
        assert self.v > self.e
        return self._round(math.log(self.v), -math.log1p(-self.e / self.v), U_LIBM)


def _float64_sigmas(steps: int) -> tuple[np.ndarray, list[Bounded]]:
    """The multistep samplers' timesteps (evenly spaced from the last training step down,
    rounded) and their noise levels sqrt((1 - abar) / abar), from the config's scaled-linear
    betas in float64, each with the bound on its float32 computation (betas from a float32
    linspace, within 6U of the larger end: the ends, the step, its multiple and the sum
    rounded; a running product for abar)."""
    cfg = load_scheduler_config()
    n = cfg.num_train_timesteps
    t = np.round(np.linspace(0, n - 1, steps + 1))[::-1][:-1].astype(np.int64)
    lo, hi = math.sqrt(cfg.beta_start), math.sqrt(cfg.beta_end)
    abar, table = Bounded(1.0, 0.0), []
    for i in range(n):
        root = Bounded(lo + i * (hi - lo) / (n - 1), 6 * U * hi)
        abar = abar * (1.0 - root * root) if i else 1.0 - root * root
        table.append(((1.0 - abar) / abar).sqrt())
    return t, [table[int(k)] for k in t]


@pytest.mark.parametrize("sampler", MULTISTEP)
@pytest.mark.parametrize("steps", [3, 10, 25])
def test_multistep_schedule_is_the_config_schedule(sampler: str, steps: int) -> None:
    scheduler = build_scheduler(load_scheduler_config(), sampler, steps)
    t, sigmas = _float64_sigmas(steps)
    assert scheduler.timesteps.tolist() == t.tolist() and scheduler.init_noise_sigma == 1.0
    got = scheduler.sigmas.double().numpy()  # type: ignore[attr-defined]
    assert got[-1] == 0.0 and len(got) == steps + 1  # the last step lands on the clean latents
    for g, ref in zip(got[:-1], sigmas, strict=True):
        assert abs(g - ref.v) <= ref.e, (g, ref)


# ---- DPM-Solver++ 2M against a float64 reference ---------------------------------------------
def _dpmpp_2m(x, sigmas, c, order=2):  # noqa: ANN001, ANN202 - float64 tensors or Bounded alike
    """DPM-Solver++(2M) (Lu et al. 2022, multistep, second order, data prediction) for
    the noise model eps(x) = c * x: first order on the first and on the last step (which
    lands on sigma 0 and so returns the clean-latent prediction), second order between
    (``order=1``: first order throughout, i.e. DDIM on these noise levels)."""

    def alpha_sigma_lambda(s):  # noqa: ANN001, ANN202 - from the noise level sigma = sqrt((1-abar)/abar)
        alpha = 1.0 / (s * s + 1.0).sqrt()
        sig = s * alpha
        return alpha, sig, alpha.log() - sig.log()

    prev_d = prev_lambda = None
    for i in range(len(sigmas) - 1):
        alpha_s, sig_s, lam_s = alpha_sigma_lambda(sigmas[i])
        d = (x - sig_s * (c * x)) / alpha_s  # the clean-latent prediction
        if i == len(sigmas) - 2:
            return d
        alpha_t, sig_t, lam_t = alpha_sigma_lambda(sigmas[i + 1])
        h = lam_t - lam_s
        phi = alpha_t * ((-h).exp() - 1.0)
        if prev_d is None or order == 1:
            x = (sig_t / sig_s) * x - phi * d
        else:
            r = (lam_s - prev_lambda) / h
            x = (sig_t / sig_s) * x - phi * d - 0.5 * phi * ((1.0 / r) * (d - prev_d))
        prev_d, prev_lambda = d, lam_s
    raise AssertionError("unreachable")


class _LinearNoise:
    """A UNet stand-in predicting eps = c * latents + k * masked-face latents (the
    conditioning's channels 1-4), linear in the latents."""

    def __init__(self, c: float, k: float = 0.0):
        self.c, self.k = c, k

    def full(self, sample: torch.Tensor, t: torch.Tensor, ctx: torch.Tensor) -> tuple[torch.Tensor, None]:
        eps = self.c * sample[:, :4]
        return (eps + self.k * sample[:, 5:9] if self.k else eps), None

    def shallow(self, *args: torch.Tensor) -> torch.Tensor:
        raise AssertionError("DeepCache is off")


@pytest.mark.parametrize("steps", [3, 10])
def test_dpmpp_2m_matches_a_float64_reference(steps: int) -> None:
    """The real denoising loop (``Denoiser``, guidance off) in float32 against the float64
    DPM-Solver++(2M) on the same noise levels (the scheduler's float32 sigmas, exact in
    float64; the test above checks them against the config), within the bound float32
    rounding allows; a first-order solver on the same levels lies far outside it."""
    c = 0.3
    gen = torch.Generator().manual_seed(3)
    start = torch.randn((1, 4, 1, 8, 8), generator=gen, dtype=torch.float64)
    params = LipSyncParams(inference_steps=steps, guidance_scale=1.0, sampler="dpmpp_2m")
    denoise = Denoiser(_LinearNoise(c), load_scheduler_config(), params, start.float(), torch.device("cpu"), NOOP)
    cond = Conditioning(latents=torch.zeros((1, 9, 3, 8, 8)), audio=torch.zeros((3, 50, 8)))
    with torch.no_grad():
        got = denoise(cond, NOOP).double()

    levels = build_scheduler(load_scheduler_config(), "dpmpp_2m", steps).sigmas.double().tolist()  # type: ignore[attr-defined]
    ref = _dpmpp_2m(start, [torch.tensor(s, dtype=torch.float64) for s in levels], c)
    # Every operation is linear in x: one bound, relative to each element's starting value
    # (c is rounded to float32 by the multiplication, like any Python scalar).
    per_unit = _dpmpp_2m(Bounded(1.0, 0.0), [Bounded(s, 0.0) for s in levels], Bounded.const(c))
    bound = per_unit.e * start.abs()
    assert per_unit.e < 1e-2 * abs(per_unit.v)  # tight enough to see a wrong step (several %)
    assert got.shape == (1, 4, 3, 8, 8) and torch.all((got - ref).abs() <= bound)

    first_order = _dpmpp_2m(start, [torch.tensor(s, dtype=torch.float64) for s in levels], c, order=1)
    assert torch.all((first_order - ref).abs() > bound)


# ---- every window starts afresh ---------------------------------------------------------------
@pytest.mark.parametrize("sampler", ["ddim", *MULTISTEP])
def test_window_result_does_not_depend_on_earlier_windows(sampler: str) -> None:
    """Window 2 denoised alone equals window 2 after window 1 on the same denoiser (no
    solver history, step counter or cached sample carries over; the windows share their
    initial noise, as a job's do, and differ by their conditioning); the result does not
    touch torch's global random state either (no hidden per-step noise)."""
    gen = torch.Generator().manual_seed(11)

    def window(count: int) -> Conditioning:
        latents = torch.randn((1, 9, count, 8, 8), generator=gen)
        return Conditioning(latents=latents, audio=torch.zeros((count, 50, 8)))

    first, second = window(4), window(3)
    initial = torch.randn((1, 4, 1, 8, 8), generator=gen)
    params = LipSyncParams(inference_steps=4, sampler=sampler)  # guided: batch of two

    def denoiser() -> Denoiser:
        return Denoiser(_LinearNoise(0.3, 0.2), load_scheduler_config(), params, initial, torch.device("cpu"), NOOP)

    with torch.no_grad():
        shared = denoiser()
        torch.manual_seed(1)
        own_first = shared(first, NOOP)
        after_first = shared(second, NOOP)
        torch.manual_seed(2)
        alone = denoiser()(second, NOOP)
    assert torch.isfinite(alone).all() and torch.equal(after_first, alone)
    assert not torch.allclose(own_first[:, :, :3], alone, atol=1e-3)  # the windows do differ


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> ModelBundle:
    cache = tmp_path_factory.mktemp("cache")
    return load_models("demo", cache / "none", cache, device="cpu", dtype="float32")


# ---- end to end ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def inputs(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("media")
    video = make_clip(media_dir / "demo1_video.mp4", folder / "v.mp4", 0.8, start=1.0)
    return video, make_audio(media_dir / "demo1_audio.wav", folder / "a.wav", 0.8)


@pytest.mark.parametrize(
    "params",
    [
        LipSyncParams(inference_steps=3, sampler="dpmpp_2m"),
        LipSyncParams(inference_steps=3, sampler="unipc"),
        LipSyncParams(**apply_quality("fast", {"inference_steps": 4})),  # DeepCache: full and shallow steps
    ],
    ids=["dpmpp_2m", "unipc", "quality-fast"],
)
def test_sampler_runs_end_to_end(
    models: ModelBundle, inputs: tuple[Path, Path], params: LipSyncParams, tmp_path: Path
) -> None:
    pipeline = LipSyncPipeline(models, detect_workers=1)
    decoded: list[torch.Tensor] = []
    decode = pipeline.vae.decode

    def spy(latents: torch.Tensor) -> torch.Tensor:  # what the real decoder is given
        decoded.append(latents.detach().clone())
        return decode(latents)

    pipeline.vae.decode = spy  # type: ignore[method-assign]
    result = pipeline.run(*inputs, tmp_path / "o.mkv", params)
    assert len(decoded) == 2 and [d.shape[0] for d in decoded] == [16, result.frames - 16]  # full, partial
    assert all(torch.isfinite(latents).all() and latents.abs().max() > 0 for latents in decoded)
    info = probe_video(result.output_path)
    assert read_frames(result.output_path, info.width, info.height).shape[0] == result.frames
