"""The fast path (compiled graphs, channels-last, threads, parallel detection, template
cache) against the plain path, on real media with demo weights on the CPU.

The compiled graphs are traced with the ``aot_eager`` backend here: the same captured
graph as on a GPU (a graph break fails the test), without generating CPU code.

Whole jobs run in float64. Twenty DDIM steps on random weights amplify rounding, and in
float32 the rounding of two equivalent graphs differs by CPU (oneDNN picks other kernels
for channels-last or another batch size), so float32 outputs of equal computations differ
by a CPU-dependent amount. In float64 the same amplification leaves differences far below
half a grey level: both paths must give the same 8-bit frames, which the lossless (.mkv)
outputs show exactly. The runners' float32 arithmetic is checked call by call against a
float64 evaluation in ``test_runners_match_eager_modules``.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from latentsync_core.common.background import Drain, Prefetch
from latentsync_core.inference import LipSyncParams, LipSyncPipeline
from latentsync_core.inference.runners import AccelOptions, UNetRunner, VAERunner
from latentsync_core.inference.template_cache import NoTemplateCache, TemplateCache
from latentsync_core.media.probe import probe_video
from latentsync_core.media.video_io import FrameReader
from latentsync_core.models.loading import ModelBundle, load_models
from latentsync_core.sync import load_syncnet_v2
from latentsync_core.vision.face_detection import detect_in_order
from tests.media_helpers import make_audio, make_clip, read_frames

W, H = 360, 640
TRACED = AccelOptions(compile=True, channels_last=True, backend="aot_eager")


class CountingDetector:
    """The real detector, counting the frames it is asked about."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.calls = 0
        self._lock = threading.Lock()

    def detect(self, frame):
        with self._lock:
            self.calls += 1
        return self.inner.detect(frame)


def demo_syncnet() -> torch.nn.Module:
    return load_syncnet_v2(Path("no-checkpoints"), "demo")[0]


def _same_sync(a: dict | None, b: dict | None) -> None:
    """Sync scores of (nearly) the same frames: the same offset, distances within rounding."""
    assert a is not None and b is not None and a["weights"] == b["weights"] == "demo"
    assert (a["offset_frames"], a["frames_scored"]) == (b["offset_frames"], b["frames_scored"])
    assert abs(a["lse_d"] - b["lse_d"]) <= 1e-3 * a["lse_d"] and abs(a["lse_c"] - b["lse_c"]) <= 1e-3 * a["lse_d"]


def _load(tmp_path_factory: pytest.TempPathFactory, dtype: str = "float64") -> ModelBundle:
    cache = tmp_path_factory.mktemp("cache")
    return load_models("demo", cache / "no-checkpoints", cache, device="cpu", dtype=dtype)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> LipSyncPipeline:
    return LipSyncPipeline(_load(tmp_path_factory), detect_workers=1, syncnet=demo_syncnet())


@pytest.fixture(scope="module")
def fast(tmp_path_factory: pytest.TempPathFactory) -> LipSyncPipeline:
    models = _load(tmp_path_factory)
    models.detector = CountingDetector(models.detector)
    cache = TemplateCache(tmp_path_factory.mktemp("templates"), max_bytes=1 << 30)
    pipe = LipSyncPipeline(models, accel=TRACED, template_cache=cache, detect_workers=2, syncnet=demo_syncnet())
    pipe.warmup()
    pipe.prepare_fast_path()
    return pipe


@pytest.fixture(scope="module")
def media(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("m")
    return {
        "clip": make_clip(media_dir / "demo1_video.mp4", d / "clip.mp4", 1.6, start=1.0),
        "speech_a": make_audio(media_dir / "demo1_audio.wav", d / "a.wav", 1.5),
        "speech_b": make_audio(media_dir / "demo1_audio.wav", d / "b.wav", 1.2, start=4.0),
        "long": make_audio(media_dir / "demo1_audio.wav", d / "long.wav", 2.3, start=2.0),
    }


def _same_video(a: Path, b: Path) -> None:
    fa, fb = read_frames(a, W, H).astype(np.int16), read_frames(b, W, H).astype(np.int16)
    assert fa.shape == fb.shape
    diff = np.abs(fa - fb)
    # float64 differences of ~1e-12 move a pixel only if it sits that close to a rounding
    # boundary between two grey levels: one level, at a vanishing share of the pixels.
    assert diff.max() <= 1 and np.count_nonzero(diff) <= 1e-5 * diff.size, (diff.max(), np.count_nonzero(diff))


def _close(got: torch.Tensor, ref: torch.Tensor) -> None:
    """Equal computations in float64, up to a different order of the same operations: a
    forward pass keeps rounding within ~1e6 ulps of its largest value."""
    assert got.dtype == ref.dtype == torch.float64
    assert (got - ref).abs().max() <= 1e6 * torch.finfo(torch.float64).eps * ref.abs().max()


def test_runners_match_eager_modules(fast: LipSyncPipeline) -> None:
    m = fast.m
    gen = torch.Generator().manual_seed(3)
    dt = torch.float64
    r = m.resolution // 8
    x = torch.randn((2, 13, 16, r, r), generator=gen, dtype=dt)
    ctx = torch.randn((32, 50, m.unet.config.cross_attention_dim), generator=gen, dtype=dt)
    t = torch.tensor([700])  # int64 like the scheduler's timesteps: the compiled graph
    with torch.no_grad():
        ref, feature = m.unet.forward_full(x, t, ctx, capture=True)
        got, got_feature = fast.unet.full(x, t, ctx)
        _close(got, ref)
        _close(got_feature, feature)
        _close(fast.unet.shallow(x, t, ctx, feature), m.unet.forward_shallow(x, t, ctx, feature))
        images = torch.rand((5, 3, m.resolution, m.resolution), generator=gen, dtype=dt) * 2 - 1  # padded to 16
        moments = fast.vae.moments(images)
        expected = m.vae.quant_conv(m.vae.encoder(images))
        _close(moments, expected)
        assert fast.unet._full.fallbacks == 0 and fast.vae._moments.fallbacks == 0
        # Inputs the graph was not compiled for run eagerly (no compile inside a job).
        t_float = torch.tensor([700.0])
        got_float, _ = fast.unet.full(x, t_float, ctx)
        assert fast.unet._full.fallbacks == 1
        _close(got_float, m.unet.forward_full(x, t_float, ctx)[0])
    assert fast.fast_path_ready and isinstance(fast.unet, UNetRunner) and isinstance(fast.vae, VAERunner)


@pytest.mark.parametrize("deepcache", [False, True])
def test_fast_path_output_equals_plain_path(
    plain: LipSyncPipeline, fast: LipSyncPipeline, media: dict[str, Path], tmp_path: Path, deepcache: bool
) -> None:
    params = LipSyncParams(inference_steps=3, enable_deepcache=deepcache)
    ref = plain.run(media["clip"], media["speech_a"], tmp_path / "plain.mkv", params)
    got = fast.run(media["clip"], media["speech_a"], tmp_path / "fast.mkv", params)
    assert got.fast_path and not ref.fast_path and ref.template_cache is None
    assert got.frames == ref.frames == 39  # two full windows (compiled) and a short one (eager)
    _same_video(ref.output_path, got.output_path)
    _same_sync(ref.sync, got.sync)


def test_template_cache_reuses_a_video_with_new_speech(
    plain: LipSyncPipeline, fast: LipSyncPipeline, media: dict[str, Path], media_dir: Path, tmp_path: Path
) -> None:
    params = LipSyncParams(inference_steps=2, seed=7)
    # Video bytes no other test used (the key is the content, not the name).
    clip = make_clip(media_dir / "demo1_video.mp4", tmp_path / "avatar.mkv", 1.6, start=3.0)
    detector: CountingDetector = fast.m.detector  # type: ignore[assignment]
    before = detector.calls
    first = fast.run(clip, media["speech_a"], tmp_path / "1.mkv", params)
    assert first.template_cache is not None
    assert first.template_cache["used"] is False and first.template_cache["stored"] is True
    assert detector.calls - before == first.source_frames

    # Same video bytes under another name, other speech: no detection, same output as
    # the plain path.
    copy = tmp_path / "copy.mkv"
    copy.write_bytes(clip.read_bytes())
    calls = detector.calls
    second = fast.run(copy, media["speech_b"], tmp_path / "2.mkv", params)
    assert second.template_cache == {"key": first.template_cache["key"], "used": True, "stored": False}
    assert detector.calls == calls
    ref = plain.run(copy, media["speech_b"], tmp_path / "ref.mkv", params)
    _same_video(ref.output_path, second.output_path)
    _same_sync(ref.sync, second.sync)  # face boxes from the template give the detection's score

    # Longer speech than the cached frames cover (and the video loops): detected again (the
    # detection path's output is the plain path's: test_fast_path_output_equals_plain_path),
    # and the entry is replaced by one covering the whole video, which serves the first
    # speech again with the first job's frames.
    calls = detector.calls
    third = fast.run(copy, media["long"], tmp_path / "3.mkv", params)
    assert third.looped and third.template_cache["used"] is False and third.template_cache["stored"] is True
    assert detector.calls - calls == third.source_frames
    fourth = fast.run(copy, media["speech_a"], tmp_path / "4.mkv", params)
    assert fourth.template_cache["used"] is True
    _same_video(first.output_path, fourth.output_path)


def _entry(cache: TemplateCache, key: str, frames: int) -> bool:
    folder = cache.staging()
    moments = np.lib.format.open_memmap(folder / "moments.npy", mode="w+", dtype=np.float32, shape=(frames, 2, 8, 4, 4))
    moments[:] = 1.0
    moments.flush()
    del moments
    boxes = np.zeros((frames, 4), np.float32)
    return cache.commit(key, folder, np.zeros((frames, 2, 3), np.float32), np.ones(frames, bool), boxes, complete=True)


def test_template_cache_is_bounded_and_survives_damage(tmp_path: Path) -> None:
    cache = TemplateCache(tmp_path / "t", max_bytes=60_000)
    assert _entry(cache, "a" * 40, 50)  # ~51 kB
    assert cache.get("a" * 40, torch.float32) is not None
    assert _entry(cache, "b" * 40, 50)  # over the bound together: the older one goes
    assert cache.get("a" * 40, torch.float32) is None and cache.get("b" * 40, torch.float32) is not None
    assert cache.total_bytes() <= 60_000
    assert not _entry(cache, "c" * 40, 500)  # larger than the whole cache: not kept
    assert cache.get("c" * 40, torch.float32) is None
    assert not any(p.name.startswith(".staging") for p in (tmp_path / "t").iterdir())
    (tmp_path / "t" / ("b" * 40) / "moments.npy").write_bytes(b"garbage")
    assert cache.get("b" * 40, torch.float32) is None  # damaged: a miss, and removed
    assert not (tmp_path / "t" / ("b" * 40)).exists()
    assert cache.get("b" * 40, torch.float16) is None  # another dtype never matches


def test_template_sessions_compute_each_frame_once_and_clean_up(tmp_path: Path) -> None:
    video = tmp_path / "v.bin"
    video.write_bytes(b"some video bytes")
    work = tmp_path / "work"
    work.mkdir()
    cache = TemplateCache(tmp_path / "t", max_bytes=1 << 20)
    for opener in (NoTemplateCache(), cache):
        computed: list[list[int]] = []

        def compute(positions: np.ndarray, computed: list[list[int]] = computed) -> torch.Tensor:
            computed.append(positions.tolist())
            return torch.full((len(positions), 2, 8, 2, 2), float(len(computed)))

        with opener.open(video, "fp", torch.float32, n_out=6, work=work) as session:
            assert session.template is None
            session.open_moments(3, latent_size=2)
            first = session.moments(np.array([0, 1, 2, 2]), compute, torch.device("cpu"))
            again = session.moments(np.array([2, 1]), compute, torch.device("cpu"))
            assert computed == [[0, 1, 2, 3]] and torch.equal(again, first[[2, 1]])
        # Closed without publishing (a failed job): nothing left in the work folder or the cache.
        assert not any(work.iterdir()) and not any((tmp_path / "t").iterdir())


def test_parallel_detection_keeps_frame_order(plain: LipSyncPipeline, media: dict[str, Path]) -> None:
    info = probe_video(media["clip"])
    with FrameReader(media["clip"], info.width, info.height) as reader:
        frames = list(reader)[:24]
    serial = [face for _, face in detect_in_order(plain.m.detector, frames, workers=1)]
    pairs = list(detect_in_order(plain.m.detector, iter(frames), workers=3))
    assert all(f is g for (f, _), g in zip(pairs, frames, strict=True))
    assert all(
        (a is None and b is None) or np.array_equal(a.points, b.points)
        for a, b in zip(serial, [face for _, face in pairs], strict=True)
    )
    assert sum(face is not None for face in serial) >= 20


def test_background_helpers_pass_errors_back() -> None:
    def numbers():
        yield 1
        yield 2
        raise ValueError("decoder broke")

    got = []
    with Prefetch(numbers(), depth=1) as items, pytest.raises(ValueError, match="decoder broke"):
        for item in items:
            got.append(item)
    assert got == [1, 2]

    seen = []

    def consume(x: int) -> None:
        if x == 3:
            raise OSError("encoder gone")
        seen.append(x)

    drain = Drain(consume, depth=1)
    with pytest.raises(OSError, match="encoder gone"):
        for i in range(100):
            drain.put(i)
        drain.finish()
    drain.abort()
    assert seen == [0, 1, 2]

    ok = Drain(seen.append, depth=1)
    for i in range(5):
        ok.put(i)
    ok.finish()
    assert seen[-5:] == [0, 1, 2, 3, 4]
