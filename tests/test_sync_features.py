"""Mel and MFCC features, the offset search and the whole SyncNetV2 scoring against
upstream's numbers (tests/data/README.md), and the sign of a known audio shift."""

import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from latentsync_core.audio import mel_spectrogram, mel_windows, mfcc
from latentsync_core.audio.mel import window_start
from latentsync_core.models import SyncNetV2
from latentsync_core.sync import offset_and_confidence, score_frames
from latentsync_core.sync.score import median_filter
from tests.sync_helpers import EnvelopeNet

DEMO_AUDIO = Path(__file__).resolve().parent.parent / "assets" / "demo1_audio.wav"  # the reference speech


@pytest.fixture(scope="module")
def pcm() -> np.ndarray:
    with wave.open(str(DEMO_AUDIO)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


@pytest.fixture(scope="module")
def syncnet_v2(v2: dict) -> SyncNetV2:
    net = SyncNetV2()
    packed = v2["state_dict_packed"]
    net.load_state_dict({k: v["int8"].float() * v["scale"] if isinstance(v, dict) else v for k, v in packed.items()})
    return net


def test_mel_spectrogram_matches_upstream(pcm: np.ndarray, stable: dict) -> None:
    ours = mel_spectrogram(pcm.astype(np.float32) / 32768.0)  # how librosa loads a 16-bit wav
    ref = stable["mel"].numpy()
    assert ours.shape == ref.shape == (80, len(pcm) // 200 + 1)
    diff = np.abs(ours - ref).max() / np.abs(ref).max()
    print(f"mel: max diff {diff:.2e} of the largest value")
    assert diff < 1e-3


def test_mel_windows_are_upstreams_crops(stable: dict) -> None:
    starts = stable["window_starts"]
    windows = mel_windows(stable["mel"].numpy(), starts)
    assert np.array_equal(windows, stable["mel_windows"].numpy())
    assert [window_start(f) for f in (0, 7, 50)] == [0, 22, 160]  # int(80 * frame / 25)
    with pytest.raises(ValueError, match="exceeds"):
        mel_windows(stable["mel"].numpy(), [238])


def test_mfcc_matches_python_speech_features(pcm: np.ndarray, v2: dict) -> None:
    ours = mfcc(pcm, 16000)
    ref = v2["mfcc"].numpy()
    assert ours.shape == ref.shape == (13, 959)
    diff = np.abs(ours - ref).max() / np.abs(ref).max()
    print(f"mfcc: max diff {diff:.2e} of the largest value")
    assert diff < 1e-4


def test_offset_search_matches_upstream_on_the_shift_case(v2: dict) -> None:
    case = v2["shift_case"]
    offset, min_dist, conf = offset_and_confidence(case["video_feat"], case["audio_feat"], vshift=case["vshift"])
    print(f"shift case: offset {offset}, LSE-D {min_dist:.6f} (upstream {case['min_dist']:.6f})")
    assert offset == case["offset"] == -3
    assert abs(min_dist - case["min_dist"]) < 1e-3 * case["min_dist"]
    assert abs(conf - case["conf"]) < 1e-3 * case["min_dist"]


@pytest.mark.parametrize("lag", [-6, -1, 0, 2, 5])
def test_a_known_shift_gives_the_offset_the_search_defines(lag: int) -> None:
    # Audio feature t belongs with video feature t - lag (the audio lags by `lag` frames),
    # built as the shift_case vector is: shared content plus independent noise.
    gen = torch.Generator().manual_seed(11)
    content = torch.randn(80, 64, generator=gen)
    video = content[20:60] + 0.1 * torch.randn(40, 64, generator=gen)
    audio = content[20 - lag : 60 - lag] + 0.1 * torch.randn(40, 64, generator=gen)
    offset, min_dist, conf = offset_and_confidence(video, audio, vshift=15)
    assert offset == -lag
    assert conf > 3  # the data pipeline's threshold: a real match stands far out from the median shift


def test_score_frames_matches_upstream_evaluate(syncnet_v2: SyncNetV2, v2: dict, pcm: np.ndarray) -> None:
    result = score_frames(syncnet_v2, v2["frames_bgr"].numpy(), pcm, vshift=v2["vshift"])
    print(f"24 frames: offset {result.offset}, LSE-D {result.lse_d:.4f}, LSE-C {result.lse_c:.4f}")
    assert result.offset == v2["offset"] == -7
    assert abs(result.lse_d - v2["min_dist"]) < 1e-3 * v2["min_dist"]
    # LSE-C is a difference of two mean distances, each within the LSE-D tolerance.
    assert abs(result.lse_c - v2["conf"]) < 2e-3 * v2["min_dist"]
    assert np.abs(result.mean_dists - v2["mean_dists"].numpy()).max() < 1e-3 * v2["min_dist"]
    assert result.num_clips == 24 - 5 and result.frame_conf.shape == result.frame_dist.shape == (19,)
    assert result.offset_ms == -280.0
    seconds, conf = result.confidence_per_second()
    assert list(seconds) == [0.0] and conf.shape == (1,)


def test_shifting_the_audio_moves_the_scored_offset(pcm: np.ndarray) -> None:
    speech = pcm[16000 : 16000 + 640 * 120]  # 120 frames of speech, after the leading silence
    # Log energy (MFCC 0) per video frame; one frame more audio so that the 480th MFCC frame exists.
    log_energy = mfcc(pcm[16000 : 16000 + 640 * 121], 16000)[0, : 4 * 120]
    energy = torch.from_numpy(log_energy).reshape(120, 4).double().mean(dim=1)
    net = EnvelopeNet(float(energy.min()), float(energy.max())).double()
    frames = net.quantise(energy).to(torch.uint8)[:, None, None, None].expand(120, 224, 224, 3).numpy()
    assert score_frames(net, frames, speech).offset == 0
    for lag in (3, -4):
        # lag > 0: the audio starts `lag` frames late (silence first); lag < 0: it starts early.
        shifted = np.concatenate([np.zeros(640 * lag, np.int16), speech]) if lag > 0 else speech[640 * -lag :]
        shifted = np.concatenate([shifted, np.zeros(640 * 10, np.int16)])[: len(speech)]
        assert score_frames(net, frames, shifted).offset == -lag


def test_too_short_and_median_filter() -> None:
    with pytest.raises(ValueError, match="too short"):
        score_frames(SyncNetV2(), np.zeros((5, 224, 224, 3), np.uint8), np.zeros(16000, np.int16))
    with pytest.raises(ValueError, match="int16"):
        score_frames(SyncNetV2(), np.zeros((8, 224, 224, 3), np.uint8), np.zeros(16000, np.float32))
    assert median_filter(np.array([1.0, 5, 2, 8, 3]), size=3).tolist() == [1, 2, 5, 3, 3]
