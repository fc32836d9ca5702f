"""Faces recorded by the real detector and replayed (``vision/recorded_faces.py``): the
replay answers each frame with exactly what dlib found in it, in any order and from a saved
file; frames it has not seen are refused with a coded error; and a job whose detector is the
replay (``load_models(detector=...)``) makes the same video as one that runs dlib."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from latentsync_core.common.errors import CodedError
from latentsync_core.inference import LipSyncParams, LipSyncPipeline
from latentsync_core.models.loading import load_models
from latentsync_core.vision.face_detection import DlibFaceDetector
from latentsync_core.vision.recorded_faces import FaceRecording, RecordedFaceDetector, record_faces
from tests.media_helpers import make_audio, make_clip, read_frames

W, H = 360, 640


@pytest.fixture(scope="module")
def clip(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(media_dir / "demo1_video.mp4", tmp_path_factory.mktemp("rf") / "clip.mp4", 0.4, start=2.0)


@pytest.fixture(scope="module")
def frames(clip: Path) -> list[np.ndarray]:
    decoded = list(read_frames(clip, W, H))
    return [*decoded, np.zeros_like(decoded[0])]  # and a black frame: no face


@pytest.fixture(scope="module")
def recorded(frames: list[np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    dlib = DlibFaceDetector()
    expected = [dlib.detect(f) for f in frames]
    path = tmp_path_factory.mktemp("rec") / "faces.npz"
    record_faces(DlibFaceDetector(), frames, workers=2).save(path)
    return path, expected


def test_replay_answers_what_the_detector_found_in_any_order(frames: list, recorded: tuple[Path, list]) -> None:
    path, expected = recorded
    replay = RecordedFaceDetector(FaceRecording.load(path))
    assert replay.name == "recorded-dlib-hog" and replay.recording.frame_count == len(frames)
    assert expected[-1] is None and all(face is not None for face in expected[:-1])
    for i in reversed(range(len(frames))):
        got = replay.detect(frames[i])
        if expected[i] is None:
            assert got is None
        else:
            assert got.box == expected[i].box and np.array_equal(got.points, expected[i].points)
    assert replay.worst_match == 0.0 and replay.calls == len(frames)


def test_frames_not_recorded_are_refused(frames: list, recorded: tuple[Path, list]) -> None:
    replay = RecordedFaceDetector.from_file(recorded[0])
    for other in (255 - frames[0], frames[0][: H // 2]):  # other content; another size
        with pytest.raises(CodedError) as err:
            replay.detect(other)
        assert err.value.code == "FACES_NOT_RECORDED"


def test_a_job_with_replayed_faces_makes_the_same_video(
    clip: Path, recorded: tuple[Path, list], media_dir: Path, tmp_path: Path
) -> None:
    speech = make_audio(media_dir / "demo1_audio.wav", tmp_path / "s.wav", 0.4)
    cache = tmp_path / "cache"
    params = LipSyncParams(inference_steps=1)
    replay = RecordedFaceDetector.from_file(recorded[0])
    outputs = []
    for name, detector in (("dlib", None), ("replay", replay)):
        models = load_models("demo", cache / "none", cache, device="cpu", detector=detector)
        assert (models.detector is replay) == (detector is not None)
        LipSyncPipeline(models, detect_workers=1).run(clip, speech, tmp_path / f"{name}.mp4", params)
        outputs.append(read_frames(tmp_path / f"{name}.mp4", W, H))
    assert replay.calls == 10
    assert np.array_equal(outputs[0], outputs[1])
