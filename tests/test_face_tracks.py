"""Face tracks on real media (the bundled talking head, the embedded dlib detector): the
issue's two-person clip (two 540x960 portraits side by side), a cut between two people,
linking rules, the JSON, the pictures and the ``faces`` command in its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from latentsync_core.inference.face_choice import choose_faces
from latentsync_core.inference.face_selection import parse_face
from latentsync_core.vision.face_detection import Face, make_face_detector
from latentsync_core.vision.face_sheet import add_thumbnails, contact_sheet
from latentsync_core.vision.face_tracks import FaceTrack, FaceTracks, link_tracks, track_faces
from tests.face_media import PORTRAIT_H, PORTRAIT_W, ROOT, shot_change, two_portraits


@pytest.fixture(scope="module")
def detector():
    return make_face_detector(None)  # the embedded dlib detector


@pytest.fixture(scope="module")
def two_people(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return two_portraits(tmp_path_factory.mktemp("faces") / "two.mp4", seconds=2.0)


@pytest.fixture(scope="module")
def two_tracks(two_people: Path, detector) -> FaceTracks:
    return track_faces(two_people, detector, workers=1)


def test_two_people_side_by_side_are_two_tracks_and_largest_never_switches(two_tracks: FaceTracks) -> None:
    tracks = two_tracks
    assert (tracks.frames, tracks.width, tracks.height, tracks.shots) == (50, 2 * PORTRAIT_W, PORTRAIT_H, [(0, 50)])
    assert tracks.ids == [0, 1] and [t.shot for t in tracks.tracks] == [0, 0]
    left, right = tracks.tracks
    assert left.boxes[left.detected, 2].max() < PORTRAIT_W <= right.boxes[right.detected, 0].min()  # one per half
    assert left.detections >= 45 and right.detections >= 45  # a face in (nearly) every frame
    # The per-frame largest face (the choice without tracks) jumps between the two people ...
    area = np.stack([(t.boxes[:, 2] - t.boxes[:, 0]) * (t.boxes[:, 3] - t.boxes[:, 1]) for t in tracks.tracks])
    both = ~np.isnan(area).any(axis=0)
    left_larger = area[0, both] > area[1, both]
    assert 0 < left_larger.sum() < both.sum(), "each person must be the largest in some frame, or this shows nothing"
    # ... the per-track choice does not: one track for the whole shot.
    choice = choose_faces(parse_face("largest"), tracks)
    chosen = choice.frame_track[choice.frame_track >= 0]
    assert len(set(chosen.tolist())) == 1 and len(chosen) >= 45
    assert [s.to_json() for s in choice.shots] == [
        {"shot": 0, "start_frame": 0, "end_frame": 50, "track": int(chosen[0]), "reason": "largest"}
    ]


def test_tracks_json_round_trip_and_summary(two_tracks: FaceTracks) -> None:
    data = json.loads(json.dumps(two_tracks.to_json(include_frames=True)))
    back = FaceTracks.from_json(data)
    for a, b in zip(two_tracks.tracks, back.tracks, strict=True):
        assert (a.id, a.shot, a.first) == (b.id, b.shot, b.first)
        assert np.array_equal(a.boxes, b.boxes, equal_nan=True) and np.array_equal(a.points, b.points, equal_nan=True)
    summary = two_tracks.to_json()["tracks"][0]
    assert "boxes" not in summary and summary["first_frame"] == 0 and summary["end"] == 2.0
    assert [e["second"] for e in summary["boxes_per_second"]] == [0, 1]
    assert 80 <= summary["size"][0] <= 130  # a ~100 px face (the clip's ~210 px face at half size)


def test_a_cut_between_two_people_gives_two_tracks(tmp_path: Path, detector) -> None:
    video = shot_change(tmp_path / "cut.mp4", seconds=1.0)
    tracks = track_faces(video, detector, workers=1)
    assert tracks.frames == 50 and tracks.shots == [(0, 25), (25, 50)]
    assert [(t.shot, t.first <= 2, t.last) for t in tracks.tracks] == [(0, True, 24), (1, False, 49)]
    assert tracks.tracks[1].first <= 27
    # The two faces sit at about the same place: without the cut they would be one track.
    faces = [[t.face_at(f)] for f in range(50) for t in tracks.tracks if t.face_at(f) is not None]
    assert len(link_tracks(faces, [(0, len(faces))])) == 1


def _face(x: float, y: float = 100.0, size: float = 80.0) -> Face:
    return Face(box=(x, y, x + size, y + size), points=np.array([[x + 20, y + 20], [x + 60, y + 20], [x + 40, y + 45]]))


def test_linking_rules() -> None:
    frames: list[list[Face]] = [[_face(100 + 2 * f), _face(400 - f)] for f in range(20)]
    frames[5] = frames[5][1:]  # the left face is missed for two frames: one track, two empty rows
    frames[6] = frames[6][1:]
    for f in range(12, 15):  # the right face is missed for three frames: its track ends, a new one starts
        frames[f] = frames[f][:1]
    frames[8].append(_face(250, 300))  # a false detection on two frames: dropped
    frames[9].append(_face(251, 300))
    frames[3].append(_face(110, 102, 60))  # a smaller face over the left one: never stolen by the track
    tracks = link_tracks(frames, [(0, 20)])
    assert [(t.id, t.first, t.last, t.detections) for t in tracks] == [(0, 0, 19, 18), (1, 0, 11, 12), (2, 15, 19, 5)]
    left = tracks[0]
    assert np.isnan(left.boxes[5:7]).all() and left.face_at(5) is None
    assert left.face_at(3).box == _face(106).box  # type: ignore[union-attr]
    assert tracks[1].boxes[0, 0] == 400  # ids: by first frame, then left to right
    # A shot boundary always ends a track, however close the next face is.
    assert [(t.first, t.last) for t in link_tracks(frames, [(0, 10), (10, 20)])][:2] == [(0, 9), (0, 9)]


def test_thumbnails_and_contact_sheet(two_people: Path, two_tracks: FaceTracks, tmp_path: Path) -> None:
    add_thumbnails(two_people, two_tracks)
    for t in two_tracks.tracks:
        image = cv2.imdecode(np.frombuffer(t.thumbnail or b"", np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (128, 128, 3) and image.std() > 10  # a picture, not a blank square
    sheet = cv2.imread(str(contact_sheet(two_tracks, tmp_path / "sheet.png")))
    assert sheet.shape[0] > 128 and sheet.shape[1] == 2 * 128


def test_faces_command(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    video = shot_change(tmp_path / "cut.mp4", seconds=1.0)  # small: the command, not the detector, is tested
    cmd = [sys.executable, "-m", "latentsync_core.vision.cli", "faces", str(video), "--workers", "1",
           "--json", str(tmp_path / "t.json"), "--contact-sheet", str(tmp_path / "s.png"),
           "--thumbnails", str(tmp_path / "th"), "--checkpoint-dir", str(tmp_path / "none")]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert "2 face tracks in 50 frames, 2 shots" in done.stdout and "faces" in done.stderr  # the progress bar
    data = json.loads((tmp_path / "t.json").read_text())
    assert [t["id"] for t in data["tracks"]] == [0, 1] and data["tracks"][1]["thumbnail"] == "track_1.jpg"
    assert (tmp_path / "th" / "track_1.jpg").read_bytes()[:2] == b"\xff\xd8"
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = tmp_path / "not_a_video.mp4"
    bad.write_text("hello")
    done = subprocess.run([*cmd[:4], str(bad)], cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2 and "error [INVALID_MEDIA]" in done.stderr


def test_track_objects_without_detections_have_no_face() -> None:
    t = FaceTrack(0, 0, 10, np.full((3, 4), np.nan), np.full((3, 3, 2), np.nan))
    assert t.face_at(9) is None and t.face_at(11) is None and t.face_at(13) is None and t.detections == 0
