from pathlib import Path

import numpy as np
import pytest
import torch

from latentsync_core.audio import WhisperFeatureExtractor
from latentsync_core.media.ffmpeg_bin import MediaError
from latentsync_core.models import CheckpointError
from tests.reference_data import load


@pytest.fixture(scope="module")
def reference() -> dict:
    return load("whisper_tiny_a")


@pytest.fixture(scope="module")
def extractor(whisper_reference_checkpoint: Path) -> WhisperFeatureExtractor:
    return WhisperFeatureExtractor(whisper_reference_checkpoint, device="cpu")


@pytest.mark.parametrize("case_index", [0, 1], ids=["9.6s", "38.4s-crosses-30s-window"])
def test_features_and_chunks_match_upstream(
    reference: dict, extractor: WhisperFeatureExtractor, media_dir: Path, case_index: int
) -> None:
    case = reference["cases"][case_index]
    feats = extractor.features(media_dir / case["audio"])
    assert feats.dtype == torch.float32
    assert feats.shape == case["features"].shape
    diff = (feats - case["features"]).abs().max().item()
    print(f"{case['audio']}: feature max abs diff {diff:.3e}")
    assert diff < 1e-4
    chunks = extractor.chunks(feats, fps=25)
    assert len(chunks) == case["num_chunks"]
    assert (chunks[:20] - case["chunks_head"]).abs().max() < 1e-4
    assert (chunks[-20:] - case["chunks_tail"]).abs().max() < 1e-4


def test_chunk_ranges_equal_the_whole(reference: dict) -> None:
    feats = reference["cases"][0]["features"]
    whole = WhisperFeatureExtractor.chunks(feats, fps=25)
    part = WhisperFeatureExtractor.chunks(feats, fps=25, start=100, count=16)
    assert torch.equal(part, whole[100:116])


def test_only_the_encoder_is_built(extractor: WhisperFeatureExtractor) -> None:
    assert not hasattr(extractor, "decoder")
    assert extractor.num_layers == 4 and extractor.embedding_dim == 64


def test_missing_and_bad_inputs(tmp_path: Path, extractor: WhisperFeatureExtractor) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        WhisperFeatureExtractor(tmp_path / "tiny.pt")
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="openai-whisper"):
        WhisperFeatureExtractor(tmp_path / "bad.pt")
    (tmp_path / "noise.wav").write_bytes(b"RIFF not really")
    with pytest.raises(MediaError) as err:
        extractor.features(tmp_path / "noise.wav")
    assert err.value.code == "INVALID_AUDIO"


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_pipelines_get_float32_features(
    whisper_reference_checkpoint: Path, extractor: WhisperFeatureExtractor, dtype: torch.dtype
) -> None:
    # Whisper's LayerNorm computes in float32: a half-precision encoder fails on a GPU.
    half = WhisperFeatureExtractor(whisper_reference_checkpoint, dtype=dtype)
    assert all(p.dtype == torch.float32 for p in half.encoder.parameters())
    samples = np.sin(np.arange(16000, dtype=np.float32) / 20)
    torch.testing.assert_close(half.features_from_samples(samples), extractor.features_from_samples(samples))
