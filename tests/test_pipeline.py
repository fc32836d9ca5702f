"""End-to-end pipeline behaviour on real media with demo weights (CPU, 2 steps)."""

import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from latentsync_core.common.errors import Cancelled, CodedError, MediaError
from latentsync_core.inference import LipSyncParams, LipSyncPipeline, PipelineOptions, build_pipeline, ping_pong_index
from latentsync_core.inference.template_cache import TemplateCache
from latentsync_core.media.probe import probe
from latentsync_core.models import DeepCacheState
from latentsync_core.models.loading import ModelBundle, load_models
from tests.media_helpers import make_audio, make_clip, read_frames

FAST = LipSyncParams(inference_steps=2)
W, H = 360, 640


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> ModelBundle:
    cache = tmp_path_factory.mktemp("cache")
    return load_models("demo", cache / "no-checkpoints", cache, device="cpu")


@pytest.fixture(scope="session")
def pipeline(models: ModelBundle) -> LipSyncPipeline:
    return LipSyncPipeline(models)


@pytest.fixture(scope="session")
def clip(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(media_dir / "demo1_video.mp4", tmp_path_factory.mktemp("m") / "clip.mp4", 2.0, start=1.0)


@pytest.fixture(scope="session")
def speech(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_audio(media_dir / "demo1_audio.wav", tmp_path_factory.mktemp("m") / "speech.wav", 1.5)


def test_happy_path(pipeline: LipSyncPipeline, clip: Path, speech: Path, tmp_path: Path) -> None:
    stages = []
    out = tmp_path / "out.mp4"
    result = pipeline.run(clip, speech, out, FAST, progress=lambda e: stages.append((e.stage, e.done, e.total)))
    info = probe(out)
    assert info.has_video and info.has_audio
    assert (info.width, info.height) == (W, H) and round(info.fps) == 25
    assert abs(info.duration - 1.5) < 0.1
    assert result.frames == 39 and result.weights_kind == "demo" and "DEMO" in (result.notice or "")
    assert [s for s, _, _ in stages][:1] == ["probe"] and ("denoise", 39, 39) in stages
    assert {"probe", "audio", "detect", "denoise", "encode"} <= {s for s, _, _ in stages}
    # Outside the face the frame is the source, up to codec noise; the mouth changed.
    src = read_frames(clip, W, H)[:37].astype(np.int16)
    got = read_frames(out, W, H)[:37].astype(np.int16)
    assert np.abs(got[:, :200] - src[:, :200]).mean() < 2.0  # hair and background
    assert np.abs(got[:, 245:280, 175:225] - src[:, 245:280, 175:225]).mean() > 5.0  # the generated lower face


def test_thirty_fps_input(pipeline: LipSyncPipeline, media_dir: Path, speech: Path, tmp_path: Path) -> None:
    clip30 = make_clip(media_dir / "demo1_video.mp4", tmp_path / "c30.mp4", 2.0, fps=30)
    result = pipeline.run(clip30, speech, tmp_path / "o.mp4", FAST)
    info = probe(result.output_path)
    assert round(info.fps) == 25 and abs(info.duration - 1.5) < 0.1 and not result.looped


def test_audio_longer_than_video_plays_back_and_forth(
    pipeline: LipSyncPipeline, media_dir: Path, tmp_path: Path
) -> None:
    short = make_clip(media_dir / "demo1_video.mp4", tmp_path / "short.mp4", 0.8)
    audio = make_audio(media_dir / "demo1_audio.wav", tmp_path / "a.wav", 2.2)
    result = pipeline.run(short, audio, tmp_path / "o.mp4", FAST)
    assert result.looped and result.source_frames == 20
    assert abs(probe(result.output_path).duration - 2.2) < 0.1
    assert [ping_pong_index(j, 20) for j in (0, 19, 20, 39, 40)] == [0, 19, 19, 0, 0]


def test_frames_without_face_pass_through(pipeline: LipSyncPipeline, media_dir: Path, tmp_path: Path) -> None:
    blanked = make_clip(
        media_dir / "demo1_video.mp4",
        tmp_path / "blank.mp4",
        3.0,
        extra_filter="drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable='between(t,1,2)'",
    )
    audio = make_audio(media_dir / "demo1_audio.wav", tmp_path / "a.wav", 2.9)
    result = pipeline.run(blanked, audio, tmp_path / "o.mp4", FAST)
    missing = set(result.frames_without_face)
    assert set(range(27, 49)) <= missing and not missing & set(range(0, 20))
    got = read_frames(result.output_path, W, H)
    assert got[30:45].max() < 20  # the black frames stay black


def test_names_with_spaces_and_quotes(pipeline: LipSyncPipeline, clip: Path, speech: Path, tmp_path: Path) -> None:
    folder = tmp_path / "a folder; with 'quotes'"
    folder.mkdir()
    video = folder / 'my "video" $(rm -rf).mp4'
    audio = folder / "it's speech & more.wav"
    video.write_bytes(clip.read_bytes())
    audio.write_bytes(speech.read_bytes())
    out = folder / "out put's.mp4"
    pipeline.run(video, audio, out, FAST)
    assert probe(out).has_video


def test_truncated_video_is_a_clear_error(pipeline: LipSyncPipeline, clip: Path, speech: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[:20000])
    with pytest.raises(MediaError) as err:
        pipeline.run(cut, speech, tmp_path / "o.mp4", FAST)
    assert err.value.code in {"INVALID_MEDIA", "INVALID_VIDEO", "NO_VIDEO_STREAM"}
    assert not (tmp_path / "o.mp4").exists()


def test_silent_audio_works_and_empty_audio_fails(
    pipeline: LipSyncPipeline, clip: Path, media_dir: Path, tmp_path: Path
) -> None:
    silent = make_audio(media_dir / "demo1_audio.wav", tmp_path / "silent.wav", 1.0, silent=True)
    result = pipeline.run(clip, silent, tmp_path / "o.mp4", FAST)
    assert abs(probe(result.output_path).duration - 1.0) < 0.1
    empty = tmp_path / "empty.wav"
    with wave.open(str(empty), "wb") as w:  # a valid WAV header with zero samples
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
    with pytest.raises(MediaError) as err:
        pipeline.run(clip, empty, tmp_path / "o2.mp4", FAST)
    assert err.value.code in {"EMPTY_AUDIO", "NO_AUDIO_STREAM", "INVALID_MEDIA"}


def test_video_without_any_face_fails_with_no_face(pipeline: LipSyncPipeline, speech: Path, tmp_path: Path) -> None:
    from latentsync_core.media.ffmpeg_bin import run_ffmpeg

    noface = tmp_path / "noface.mp4"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "1", "-pix_fmt", "yuv420p", str(noface)])
    with pytest.raises(CodedError) as err:
        pipeline.run(noface, speech, tmp_path / "o.mp4", FAST)
    assert err.value.code == "NO_FACE"


def test_cancellation_stops_and_cleans_up(pipeline: LipSyncPipeline, clip: Path, speech: Path, tmp_path: Path) -> None:
    seen = []
    work = tmp_path / "work"
    with pytest.raises(Cancelled):
        pipeline.run(
            clip,
            speech,
            tmp_path / "o.mp4",
            FAST,
            progress=lambda e: seen.append(e.stage),
            should_cancel=lambda: "denoise" in seen,
            work_dir=work,
        )
    assert not (tmp_path / "o.mp4").exists()
    assert not any(work.iterdir())


def test_deepcache_runs_end_to_end(pipeline: LipSyncPipeline, clip: Path, speech: Path, tmp_path: Path) -> None:
    params = LipSyncParams(inference_steps=4, enable_deepcache=True)
    result = pipeline.run(clip, speech, tmp_path / "o.mp4", params)
    assert probe(result.output_path).has_video


def test_deepcache_shallow_step_reuses_deep_features(models: ModelBundle) -> None:
    """A cached step on the refresh step's own input must give the full network's output."""
    unet = models.unet
    torch.manual_seed(0)
    x = torch.randn(2, 13, 4, 16, 16)
    ctx = torch.randn(8, 50, 64)
    with torch.no_grad():
        full = unet(x, 500, encoder_hidden_states=ctx).sample
        cache = DeepCacheState(interval=3)  # each call is the next step
        first = unet(x, 500, encoder_hidden_states=ctx, deep_cache=cache).sample
        shallow = unet(x, 500, encoder_hidden_states=ctx, deep_cache=cache).sample
        other = unet(x * 0.5, 480, encoder_hidden_states=ctx, deep_cache=cache).sample
    assert torch.allclose(first, full, atol=1e-5) and torch.allclose(shallow, full, atol=1e-5)
    assert not torch.allclose(other, full, atol=1e-3)


def test_deepcache_schedule_decides_full_and_shallow_steps() -> None:
    calls = []

    def full(x):
        calls.append("full")
        return x, x * 10

    def shallow(x, feature):
        calls.append("shallow")
        return feature

    cache = DeepCacheState(interval=3)
    preds = [cache.step(full, shallow, torch.tensor(float(k))) for k in range(7)]
    assert calls == ["full", "shallow", "shallow", "full", "shallow", "shallow", "full"]
    assert [float(p) for p in preds] == [0, 0, 0, 3, 30, 30, 6]  # shallow steps see the last full step's feature
    assert cache.full_steps(20) == 7 and DeepCacheState(1).full_steps(20) == 20
    off = DeepCacheState(1)
    calls.clear()
    [off.step(full, shallow, torch.tensor(1.0)) for _ in range(3)]
    assert calls == ["full"] * 3 and off.feature is None  # DeepCache off keeps no feature


def test_bad_params_rejected(pipeline: LipSyncPipeline, clip: Path, speech: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="inference_steps"):
        pipeline.run(clip, speech, tmp_path / "o.mp4", LipSyncParams(inference_steps=0))
    for bad in ({"guidance_scale": 20.5}, {"seed": -1}, {"seed": 2**63}, {"inference_steps": 201}):
        with pytest.raises(CodedError) as err:  # the caller's input: a coded error
            LipSyncParams(**bad).validate()
        assert err.value.code == "INVALID_PARAMETER" and next(iter(bad)) in err.value.message
    LipSyncParams(inference_steps=200, guidance_scale=0.0, seed=2**63 - 1).validate()


def test_describe_and_memory_stats(pipeline: LipSyncPipeline) -> None:
    info = pipeline.describe()
    assert info["device"] == "cpu" and info["device_name"] == "cpu" and info["dtype"] == "float32"
    assert info["weights"] == "demo" and "demo" in info["notice"] and info["resolution"] == 128
    assert info["fast_path_ready"] is False and info["load_seconds"] >= 0
    assert pipeline.memory_stats() == {}


def test_build_pipeline_from_options(tmp_path: Path) -> None:
    options = PipelineOptions(
        weights="demo",
        checkpoint_dir=tmp_path / "no-checkpoints",
        cache_dir=tmp_path / "cache",
        device="cpu",
        dtype="auto",
        template_cache_dir=tmp_path / "templates",
        template_cache_max_bytes=1 << 20,
        detect_workers=1,
    )
    pipe = build_pipeline(options)
    assert isinstance(pipe.templates, TemplateCache) and pipe.templates.max_bytes == 1 << 20
    assert pipe.planner.detect_workers == 1 and not pipe.accel.compile and pipe.m.dtype == torch.float32
    assert pipe.describe()["weights"] == "demo"
