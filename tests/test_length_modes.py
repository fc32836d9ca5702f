"""``sync_mode``: the documented frame count and order of every mode (the pure function),
and each mode through the pipeline (demo weights, one step) on a video whose frames carry
their own number in a corner, far from the face: in the lossless output that corner is the
source frame's, so the order of the shown frames can be read back exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from latentsync_core.common.errors import CodedError
from latentsync_core.inference import LipSyncParams, LipSyncPipeline, ping_pong_index
from latentsync_core.inference.length_modes import SYNC_MODES, frames_to_read, plan_length
from latentsync_core.media.audio_io import load_audio
from latentsync_core.media.ffmpeg_bin import input_arg, run_ffmpeg
from latentsync_core.models.loading import load_models
from tests.face_media import DEMO_AUDIO, SIDE, square_frames, write_lossless
from tests.media_helpers import read_frames

V = 20  # frames of the test video
STEP = 10  # grey level per frame number in the corner


def test_each_mode_documented_count_and_order() -> None:
    def plan(mode: str, a: int, v: int) -> tuple[int, list[int], list[int]]:
        p = plan_length(mode, a, v)
        return p.frames, p.source_index.tolist(), list(p.silent_frames)

    # speech longer than the video: A = 7, V = 3
    assert plan("bounce", 7, 3) == (7, [0, 1, 2, 2, 1, 0, 0], [])
    assert plan("loop", 7, 3) == (7, [0, 1, 2, 0, 1, 2, 0], [])
    assert plan("cut_off", 7, 3) == (3, [0, 1, 2], [])
    assert plan("silence", 7, 3) == (7, [0, 1, 2, 2, 1, 0, 0], [])  # as bounce
    assert plan("remap", 7, 3) == (7, [0, 0, 0, 1, 1, 2, 2], [])  # floor(j * 3 / 7)
    # video longer than the speech: A = 3, V = 7
    assert plan("bounce", 3, 7) == (3, [0, 1, 2], [])
    assert plan("loop", 3, 7) == (3, [0, 1, 2], [])
    assert plan("cut_off", 3, 7) == (3, [0, 1, 2], [])
    assert plan("silence", 3, 7) == (7, [0, 1, 2, 3, 4, 5, 6], [3, 4, 5, 6])
    assert plan("remap", 3, 7) == (3, [0, 2, 4], [])  # floor(j * 7 / 3)
    for mode in SYNC_MODES:  # equal lengths: every mode is the identity
        assert plan(mode, 5, 5) == (5, [0, 1, 2, 3, 4], [])
    assert plan_length("silence", 3, 7).to_json() == {
        "mode": "silence",
        "audio_frames": 3,
        "video_frames": 7,
        "output_frames": 7,
        "silent_frames": [3, 7],
    }
    assert frames_to_read("bounce", 9) == frames_to_read("loop", 9) == frames_to_read("cut_off", 9) == 9
    assert frames_to_read("silence", 9) is frames_to_read("remap", 9) is None  # the whole video
    with pytest.raises(CodedError) as err:
        plan_length("pingpong", 3, 3)
    assert err.value.code == "INVALID_SYNC_MODE"


def test_bounce_is_upstreams_ping_pong_and_remap_is_exact() -> None:
    for v in (1, 2, 3, 16, 37):
        for a in (1, 5, 16, 100):
            assert plan_length("bounce", a, v).source_index.tolist() == [ping_pong_index(j, v) for j in range(a)]
            remap = plan_length("remap", a, v).source_index
            assert remap.tolist() == [int(np.floor(j * v / a)) for j in range(a)]
            assert remap[0] == 0 and remap.max() < v and (np.diff(remap) >= 0).all()
    big = plan_length("remap", 3, 10**12)  # integer arithmetic: no float rounding at any length
    assert big.source_index.tolist() == [0, 333333333333, 666666666666]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> LipSyncPipeline:
    cache = tmp_path_factory.mktemp("cache")
    return LipSyncPipeline(load_models("demo", cache / "no-checkpoints", cache, device="cpu"), detect_workers=1)


@pytest.fixture(scope="module")
def numbered(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 20-frame lossless video of one face, frame n with grey STEP * n in its top-left 16x16
    corner; speech of 12 and of 32 output frames (0.4 s and 1.2 s)."""
    folder = tmp_path_factory.mktemp("numbered")
    frames = square_frames(folder, V)
    for n in range(V):
        frames[n, :16, :16] = STEP * n
    speech = {}
    for seconds, frames_out in ((0.4, 12), (1.2, 32)):
        speech[frames_out] = folder / f"speech_{frames_out}.wav"
        run_ffmpeg(["-ss", "2", "-t", str(seconds), "-i", input_arg(DEMO_AUDIO), str(speech[frames_out])])
    return {"video": write_lossless(folder / "numbered.mkv", frames), "speech": speech}


@pytest.mark.parametrize(("mode", "audio_frames"), [("loop", 32), ("cut_off", 32), ("silence", 12), ("remap", 12)])
def test_each_mode_through_the_pipeline(
    pipeline: LipSyncPipeline, numbered: dict, tmp_path: Path, mode: str, audio_frames: int
) -> None:
    out = tmp_path / "out.mkv"
    params = LipSyncParams(inference_steps=1, sync_mode=mode)
    result = pipeline.run(numbered["video"], numbered["speech"][audio_frames], out, params)
    expected = plan_length(mode, audio_frames, V)
    got = read_frames(out, SIDE, SIDE)
    assert result.frames == len(got) == expected.frames
    assert np.round(got[:, :16, :16].mean(axis=(1, 2, 3)) / STEP).astype(int).tolist() == expected.source_index.tolist()
    assert result.sync_mode == expected.to_json() and not result.frames_without_face
    # The speech in the file: cut with the video, padded with silence, or as it was.
    samples = load_audio(out)
    speech = load_audio(numbered["speech"][audio_frames])
    if mode in ("cut_off", "silence"):
        assert abs(len(samples) - expected.frames * 640) <= 640  # the file's audio ends with its frames
        n = min(len(samples), len(speech))
        assert np.array_equal(samples[:n], speech[:n])
        assert not samples[len(speech) :].any()  # silence after the speech (silence mode)
    else:
        assert np.array_equal(samples, speech)  # untouched
