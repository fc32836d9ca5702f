"""The streaming sync score (what every job gets) equals scoring the finished file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latentsync_core.media.audio_io import load_audio, to_int16
from latentsync_core.media.probe import probe_video
from latentsync_core.media.video_io import FrameReader
from latentsync_core.sync import load_syncnet_v2, score_video
from latentsync_core.sync.stream import SyncTap
from latentsync_core.sync.track import detect_boxes
from latentsync_core.vision.face_detection import make_face_detector
from tests.media_helpers import make_clip


def test_streamed_windows_give_the_report_of_the_whole_file(media_dir: Path, tmp_path: Path) -> None:
    clip = make_clip(media_dir / "demo1_video.mp4", tmp_path / "c.mp4", 1.6, start=3.0)
    syncnet, label = load_syncnet_v2(tmp_path, "demo")
    detector = make_face_detector(None)
    whole = score_video(clip, syncnet=syncnet, detector=detector)

    info = probe_video(clip)
    tap = SyncTap(syncnet, label, detect_boxes(clip, info, detector))
    with FrameReader(clip, info.width, info.height) as reader:
        frames = np.stack(list(reader))
    for start in range(0, len(frames), 16):  # as the pipeline hands over its windows
        tap.add(frames[start : start + 16])
    streamed = tap.finish(to_int16(load_audio(clip)))

    assert streamed is not None
    assert (streamed.offset_frames, streamed.frames_scored, streamed.weights) == (
        whole.offset_frames, whole.frames_scored, whole.weights)  # fmt: skip
    # Same crops and network; only the batching of the clips differs (float rounding).
    assert abs(streamed.lse_d - whole.lse_d) <= 1e-4 * whole.lse_d
    assert abs(streamed.lse_c - whole.lse_c) <= 1e-4 * whole.lse_d
    assert [s for s, _ in streamed.per_second_confidence] == [s for s, _ in whole.per_second_confidence]


def test_no_face_track_means_no_score(tmp_path: Path) -> None:
    syncnet, label = load_syncnet_v2(tmp_path, "demo")
    tap = SyncTap(syncnet, label, [None] * 30)
    tap.add(np.zeros((30, 64, 64, 3), np.uint8))
    assert tap.finish(np.zeros(16000, np.int16)) is None


def test_which_syncnet_scores_the_outputs(tmp_path: Path) -> None:
    import pytest
    import torch

    from latentsync_core.inference.factory import PipelineOptions, _syncnet
    from latentsync_core.weights.official import MissingWeightsError

    def options(weights: str, sync_score: bool | None) -> PipelineOptions:
        return PipelineOptions(weights=weights, checkpoint_dir=tmp_path, cache_dir=tmp_path, sync_score=sync_score)

    cpu = torch.device("cpu")
    assert _syncnet(options("official", None), cpu) is None  # auto: no weights file, no scoring
    assert _syncnet(options("demo", False), cpu) is None
    assert _syncnet(options("demo", None), cpu).weights_label == "demo"
    with pytest.raises(MissingWeightsError, match="syncnet_v2.model"):
        _syncnet(options("official", True), cpu)  # asked for: a missing file is an error that names it
