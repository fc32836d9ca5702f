"""Face selection: parsing and its coded errors, ``face=track`` / ``face=point`` through the
pipeline (demo weights, lossless output: the other person's half of every frame is
bit-identical to the source), and ``face=speaker`` where the answer is known.

The speaker test scores through the real path (tracks -> upstream's crops -> the audio
under them -> ``score_frames``' offset search) with a deterministic stand-in for SyncNetV2
(``tests/sync_helpers.EnvelopeNet``: lip embedding = brightness of a patch under the face,
audio embedding = the speech's quantised loudness), not a trained net: the video paints
each face's patch with the loudness of a different stretch of speech, so exactly one face
"speaks" the audio track.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from latentsync_core.audio import mfcc
from latentsync_core.common.errors import CodedError
from latentsync_core.inference import LipSyncParams, LipSyncPipeline
from latentsync_core.inference.context import open_job
from latentsync_core.inference.face_choice import check_selection, choose_faces
from latentsync_core.inference.face_selection import FaceSelection, check_point_in_video, parse_face
from latentsync_core.inference.selected_source import plan_selected_source
from latentsync_core.media.probe import probe_video
from latentsync_core.models.loading import ModelBundle, load_models
from latentsync_core.sync.speaker import SyncNetSpeakerScorer, speaker_confidences
from latentsync_core.vision.face_detection import make_face_detector
from latentsync_core.vision.face_tracks import FaceTracks, track_faces
from tests.face_media import DEMO_AUDIO, SIDE, demo_pcm, side_by_side, square_frames, write_lossless, write_wav
from tests.media_helpers import make_audio, read_frames
from tests.sync_helpers import EnvelopeNet

ONE_STEP = {"inference_steps": 1}


@pytest.fixture(scope="module")
def detector():
    return make_face_detector(None)


# ---------------------------------------------------------------- parsing and coded errors


def test_parsing() -> None:
    assert parse_face("largest") == FaceSelection("largest") and str(parse_face(" Speaker ")) == "speaker"
    assert parse_face("track:12") == FaceSelection("track", track_id=12)
    p = parse_face("point:10.5,20@1.25")
    assert (p.kind, p.x, p.y, p.seconds, str(p)) == ("point", 10.5, 20.0, 1.25, "point:10.5,20@1.25")
    for bad in ("", "biggest", "track:", "track:-1", "track:x", "point:1,2", "point:1,2@", "point:a,b@1",
                "point:1,2@nan", "track:1 extra", "track:99999999999"):  # fmt: skip
        with pytest.raises(CodedError) as err:
            parse_face(bad)
        assert err.value.code == "INVALID_FACE", bad
    with pytest.raises(CodedError) as err:
        LipSyncParams(face="nobody").validate()
    assert err.value.code == "INVALID_FACE"
    with pytest.raises(CodedError) as err:
        LipSyncParams(sync_mode="stretch").validate()
    assert err.value.code == "INVALID_SYNC_MODE" and "remap" in err.value.message
    LipSyncParams(face="point:1,2@0", sync_mode="silence").validate()


def test_checks_before_queueing() -> None:
    check_point_in_video(parse_face("point:479.9,0@1.99"), 480, 240, 2.0)
    for bad in ("point:480,10@1", "point:10,240@1", "point:-1,10@1", "point:10,10@2", "point:10,10@-0.5"):
        with pytest.raises(CodedError) as err:
            check_point_in_video(parse_face(bad), 480, 240, 2.0)
        assert err.value.code == "POINT_OUTSIDE_FRAME", bad
    box = np.array([[10.0, 10.0, 90.0, 90.0]] * 5)
    from latentsync_core.vision.face_tracks import FaceTrack

    tracks = FaceTracks([FaceTrack(0, 0, 0, box, np.zeros((5, 3, 2)))], 5, 100, 100, [(0, 5)], "test")
    check_selection(parse_face("track:0"), tracks)
    check_selection(parse_face("point:50,50@0.1"), tracks)
    with pytest.raises(CodedError) as err:
        check_selection(parse_face("track:3"), tracks)
    assert err.value.code == "UNKNOWN_TRACK" and "tracks: 0" in err.value.message
    with pytest.raises(CodedError) as err:
        check_selection(parse_face("point:95,95@0.1"), tracks)
    assert err.value.code == "NO_FACE_AT_POINT"
    with pytest.raises(CodedError) as err:
        check_selection(parse_face("point:50,50@0.2"), tracks)  # frame 5 of a 5-frame video
    assert err.value.code == "POINT_OUTSIDE_FRAME"


# ---------------------------------------------------------------- through the pipeline


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> LipSyncPipeline:
    cache = tmp_path_factory.mktemp("cache")
    models: ModelBundle = load_models("demo", cache / "no-checkpoints", cache, device="cpu")
    return LipSyncPipeline(models, detect_workers=1)


@pytest.fixture(scope="module")
def two_people(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("two")
    video = side_by_side(folder / "two.mp4", seconds=2.0)
    speech = make_audio(DEMO_AUDIO, folder / "speech.wav", 0.6, start=2.0)  # 17 output frames
    return {"video": video, "speech": speech, "source": read_frames(video, 2 * SIDE, SIDE)}


@pytest.mark.parametrize(("face", "animated"), [("track:1", "right"), ("point:110,120@0.2", "left")])
def test_only_the_chosen_person_changes(
    pipeline: LipSyncPipeline, two_people: dict, tmp_path: Path, face: str, animated: str
) -> None:
    out = tmp_path / "out.mkv"  # lossless: the exact frames
    result = pipeline.run(two_people["video"], two_people["speech"], out, LipSyncParams(face=face, **ONE_STEP))
    got = read_frames(out, 2 * SIDE, SIDE)
    src = two_people["source"][: len(got)]
    assert result.frames == len(got) == 17
    halves = {"left": np.s_[:, :, :SIDE], "right": np.s_[:, :, SIDE:]}
    other = "left" if animated == "right" else "right"
    assert np.array_equal(got[halves[other]], src[halves[other]])  # bit-identical
    changed = np.abs(got[halves[animated]].astype(int) - src[halves[animated]]).max(axis=(1, 2, 3))
    assert (changed[np.setdiff1d(np.arange(17), result.frames_without_face)] > 20).all()
    track = 1 if animated == "right" else 0
    kind = face.split(":")[0]
    assert result.face == {
        "face": str(parse_face(face)),
        "shots": [{"shot": 0, "start_frame": 0, "end_frame": 50, "track": track, "reason": kind}],
    }
    assert len(result.frames_without_face) <= 2 and result.sync_mode is None


def test_an_unknown_track_fails_the_job_with_its_code(pipeline: LipSyncPipeline, two_people: dict, tmp_path) -> None:
    with pytest.raises(CodedError) as err:
        pipeline.run(two_people["video"], two_people["speech"], tmp_path / "o.mkv", LipSyncParams(face="track:7"))
    assert err.value.code == "UNKNOWN_TRACK" and not (tmp_path / "o.mkv").exists()


# ---------------------------------------------------------------- face=speaker


PATCH = (slice(190, 202), slice(102, 122))  # inside the painted patch in any crop of a face (as test_sync_video)
FRAMES = 60


def _energy(pcm: np.ndarray) -> np.ndarray:
    """Per video frame, the mean log energy (MFCC 0) of the speech under it."""
    return mfcc(pcm[: 640 * (FRAMES + 1)], 16000)[0, : 4 * FRAMES].reshape(FRAMES, 4).mean(1)


@pytest.fixture(scope="module")
def speakers(tmp_path_factory: pytest.TempPathFactory, detector) -> dict:
    """Two still faces side by side; under each, a patch whose brightness is the loudness
    of a different stretch of the demo speech. Two lossless videos of the same frames: one
    with the left face's speech as its audio track, one with the right face's."""
    folder = tmp_path_factory.mktemp("speakers")
    pcm = demo_pcm()
    speech = [pcm[16000 : 16000 + 640 * (FRAMES + 1)], pcm[64000 : 64000 + 640 * (FRAMES + 1)]]
    energy = [_energy(s) for s in speech]
    net = EnvelopeNet(float(min(e.min() for e in energy)), float(max(e.max() for e in energy)), patch=PATCH).double()
    levels = [net.quantise(torch.from_numpy(e)).to(torch.uint8).numpy() for e in energy]
    assert np.corrcoef(levels[0].astype(float), levels[1].astype(float))[0, 1] < 0.5  # two different envelopes

    still = np.concatenate([square_frames(folder, 1)[0], square_frames(folder, 1, start=3.0, mirrored=True)[0]], 1)
    faces = sorted(detector.detect_all(still), key=lambda f: f.box[0])
    assert len(faces) == 2
    frames = np.repeat(still[None], FRAMES, axis=0)
    for face, level in zip(faces, levels, strict=True):
        x1, y1, x2, y2 = face.box
        cx, cy, s = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) / 2
        rows, cols = slice(int(cy + 1.25 * s), int(cy + 1.65 * s)), slice(int(cx - 0.3 * s), int(cx + 0.3 * s))
        frames[:, rows, cols] = level[:, None, None, None]
    videos = [
        write_lossless(folder / f"speaks_{i}.mkv", frames, write_wav(folder / f"speech_{i}.wav", s[: 640 * FRAMES]))
        for i, s in enumerate(speech)
    ]
    return {"videos": videos, "speech": [s[: 640 * FRAMES] for s in speech], "net": net, "folder": folder}


def test_speaker_is_the_face_that_moves_with_the_audio(speakers: dict, detector) -> None:
    scorer = SyncNetSpeakerScorer(speakers["net"])
    tracks = track_faces(speakers["videos"][0], detector, workers=1)  # the same frames in both videos
    assert tracks.ids == [0, 1] and tracks.tracks[0].boxes[0, 0] < tracks.tracks[1].boxes[0, 0]
    for speaking, (video, pcm) in enumerate(zip(speakers["videos"], speakers["speech"], strict=True)):
        conf = speaker_confidences(video, tracks, pcm, scorer)
        assert set(conf) == {0, 1} and conf[speaking] > 3 and conf[speaking] > conf[1 - speaking] + 1
        choice = choose_faces(parse_face("speaker"), tracks, conf)
        assert [(s.track, s.reason) for s in choice.shots] == [(speaking, "speaker")]
        assert set(choice.frame_track.tolist()) == {speaking}
        # No track confident enough: the largest, and the record says so.
        high = choose_faces(parse_face("speaker"), tracks, conf, threshold=1e9)
        assert high.shots[0].reason == "largest (no track above confidence 1e+09)" and high.shots[0].track is not None
        assert high.to_json()["shots"][0]["confidence"] == {str(k): round(v, 3) for k, v in conf.items()}
    no_audio = choose_faces(parse_face("speaker"), tracks, None, "the video has no audio")
    assert no_audio.shots[0].reason == "largest (the video has no audio)"


def test_speaker_through_the_source_plan(speakers: dict, detector, tmp_path: Path) -> None:
    """The job's path: the video's own audio track is read and scored (the right face speaks)."""
    video = speakers["videos"][1]
    params = LipSyncParams(face="speaker")
    info = probe_video(video)
    with open_job(
        video, video, tmp_path / "o.mkv", params, torch.device("cpu"), torch.float32, work_dir=tmp_path
    ) as ctx:
        scorer = SyncNetSpeakerScorer(speakers["net"])
        with plan_selected_source(ctx, info, FRAMES, parse_face("speaker"), detector, 256, 1, scorer) as plan:
            assert plan.face_choice is not None
            assert [(s["track"], s["reason"]) for s in plan.face_choice["shots"]] == [(1, "speaker")]
            assert plan.has_face.all() and (plan.boxes[:, 0] >= SIDE).all()  # the right face, every frame
        silent = dataclasses.replace(info, has_audio=False)
        with plan_selected_source(ctx, silent, FRAMES, parse_face("speaker"), detector, 256, 1, scorer) as plan:
            assert plan.face_choice["shots"][0]["reason"] == "largest (the video has no audio)"  # type: ignore[index]
