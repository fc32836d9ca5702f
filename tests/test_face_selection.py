"""Face selection: parsing and its coded errors, ``face=track`` / ``face=point`` through the
pipeline (demo weights, lossless output: the other person's half of every frame is
bit-identical to the source). ``face=speaker``: tests/test_face_speaker.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from latentsync_core.common.errors import CodedError
from latentsync_core.inference import LipSyncParams, LipSyncPipeline
from latentsync_core.inference.face_choice import check_selection
from latentsync_core.inference.face_selection import FaceSelection, check_point_in_video, parse_face
from latentsync_core.inference.template_cache import TemplateCache, file_sha256
from latentsync_core.models.loading import ModelBundle, load_models
from latentsync_core.vision.face_tracks import FaceTracks
from tests.face_media import DEMO_AUDIO, SIDE, side_by_side
from tests.media_helpers import make_audio, read_frames

ONE_STEP = {"inference_steps": 1}


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


def test_a_face_selection_is_cached_under_its_own_key(
    pipeline: LipSyncPipeline, two_people: dict, tmp_path: Path
) -> None:
    templates = TemplateCache(tmp_path / "templates", 1 << 30)
    cached = LipSyncPipeline(pipeline.m, template_cache=templates, detect_workers=1)
    video, speech = two_people["video"], two_people["speech"]
    runs = [
        cached.run(video, speech, tmp_path / f"o{i}.mkv", LipSyncParams(face="track:1", **ONE_STEP)) for i in (0, 1)
    ]
    assert [(r.template_cache["used"], r.template_cache["stored"]) for r in runs] == [(False, True), (True, False)]  # type: ignore[index]
    assert runs[1].face == runs[0].face and runs[1].face["shots"][0]["track"] == 1  # type: ignore[index]
    assert runs[1].frames_without_face == runs[0].frames_without_face
    first, again = (read_frames(tmp_path / f"o{i}.mkv", 2 * SIDE, SIDE) for i in (0, 1))
    assert np.array_equal(first, again)  # the cached plan and moments give the same frames
    # The other person, and the plain job (largest face per frame), are other entries.
    other = cached.run(video, speech, tmp_path / "o2.mkv", LipSyncParams(face="track:0", **ONE_STEP))
    assert other.template_cache["used"] is False and other.face["shots"][0]["track"] == 0  # type: ignore[index]
    plain_key = TemplateCache.key(file_sha256(video), cached.fingerprint())
    assert len({runs[0].template_cache["key"], other.template_cache["key"], plain_key}) == 3  # type: ignore[index]
