"""Detecting every k-th frame (``detect_strided``, ``SourcePlanner(detect_stride=k)``):
linear motion is interpolated exactly, jumps and lost faces force detection of the frames
in between, and the default stride plans exactly what detecting every frame plans.

The detector is a test double that answers known points for each frame (it reads the
frame's index from its grey level); the planner, decoding, interpolation and alignment are
the real ones."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from latentsync_core.inference.context import open_job
from latentsync_core.inference.params import LipSyncParams
from latentsync_core.inference.source import SourcePlanner
from latentsync_core.media.ffmpeg_bin import run_ffmpeg
from latentsync_core.media.probe import probe_video
from latentsync_core.media.video_io import FrameReader
from latentsync_core.vision.alignment import FaceAligner
from latentsync_core.vision.face_detection import DlibFaceDetector, Face
from latentsync_core.vision.strided_detection import detect_strided

ROOT = Path(__file__).resolve().parent.parent
BASE, STEP = 16, 20  # frame i is uniformly grey at BASE + STEP * i: its index survives the codec
START = np.array([[400.0, 300.0], [560.0, 302.0], [480.0, 400.0]])
VELOCITY = np.array([1.7, -0.6])  # px per frame, not a multiple of anything
# Matrices from points equal up to float64 rounding: a few float32 ulps of the largest
# coordinate (< 1024 px) after the cast to float32 inside the alignment.
MATRIX_TOL = 16 * float(np.finfo(np.float32).eps) * 1024
POINT_TOL = 8 * float(np.finfo(np.float64).eps) * 1024


def linear_points(i: int) -> np.ndarray:
    return START + VELOCITY * i


class KnownFaces:
    """FaceDetector double: the face of frame i is ``points(i)`` (None where it returns None).
    Thread-safe, clonable as the dlib detector is, and it records the frames it was asked."""

    name = "known-faces"

    def __init__(self, points: dict[int, np.ndarray | None]):
        self.points, self.calls, self._lock = points, [], threading.Lock()

    def clone(self) -> KnownFaces:
        return self

    def detect(self, frame_rgb: np.ndarray) -> Face | None:
        index = round((float(frame_rgb.mean()) - BASE) / STEP)
        with self._lock:
            self.calls.append(index)
        pts = self.points[index]
        if pts is None:
            return None
        lo, hi = pts.min(0), pts.max(0)
        return Face(box=(lo[0], lo[1], hi[0], hi[1]), points=pts.copy())


def grey_frames(n: int, size: int = 32) -> list[np.ndarray]:
    return [np.full((size, size, 3), BASE + STEP * i, np.uint8) for i in range(n)]


def expected_matrices(points: list[np.ndarray | None]) -> np.ndarray:
    aligner = FaceAligner(512)
    return np.stack([aligner.matrix(p) if p is not None else np.full((2, 3), np.nan, np.float32) for p in points])


@pytest.mark.parametrize("workers", [1, 2])
def test_linear_motion_is_interpolated_exactly(workers: int) -> None:
    n, stride = 11, 3
    detector = KnownFaces({i: linear_points(i) for i in range(n)})
    out = list(detect_strided(detector, grey_frames(n), workers, stride, max_motion=100.0))
    assert [int(round((f.mean() - BASE) / STEP)) for f, _ in out] == list(range(n))  # in order
    assert sorted(detector.calls) == [0, 3, 6, 9, 10]  # anchors and the last frame only
    for i, (_, face) in enumerate(out):
        assert face is not None
        np.testing.assert_allclose(face.points, linear_points(i), rtol=0, atol=POINT_TOL)
        lo = linear_points(i).min(0)
        np.testing.assert_allclose(face.box[:2], lo, rtol=0, atol=POINT_TOL)


def test_lost_face_and_slow_motion_threshold() -> None:
    n, stride = 10, 3
    pts: dict[int, np.ndarray | None] = {i: linear_points(i) for i in range(n)}
    pts[6] = None  # lost at an anchor: the frames on both sides (4, 5 and 7, 8) must be detected
    detector = KnownFaces(pts)
    out = list(detect_strided(detector, grey_frames(n), 1, stride, max_motion=100.0))
    assert sorted(detector.calls) == [0, 3, 4, 5, 6, 7, 8, 9]
    assert [face is None for _, face in out] == [i == 6 for i in range(n)]
    for i in (4, 5, 7, 8):
        assert np.array_equal(out[i][1].points, linear_points(i))  # detected, not interpolated
    # A threshold below the anchor-to-anchor motion (3 frames x 1.8 px) detects everything.
    strict = KnownFaces({i: linear_points(i) for i in range(n)})
    list(detect_strided(strict, grey_frames(n), 2, stride, max_motion=5.0))
    assert sorted(strict.calls) == list(range(n))


def _index_video(path: Path, n: int, size: int = 64) -> Path:
    raw = path.with_suffix(".gray")
    raw.write_bytes(b"".join(np.full((size, size), BASE + STEP * i, np.uint8).tobytes() for i in range(n)))
    run_ffmpeg(["-f", "rawvideo", "-pix_fmt", "gray", "-s", f"{size}x{size}", "-r", "25", "-i", str(raw),
                "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv444p", str(path)])  # fmt: skip
    return path


def _plan(tmp_path: Path, video: Path, planner: SourcePlanner, n_out: int):  # noqa: ANN202
    info = probe_video(video)
    audio = ROOT / "assets" / "demo1_audio.wav"
    with open_job(video, audio, tmp_path / "out.mp4", LipSyncParams(), torch.device("cpu"), torch.float32,
                  work_dir=tmp_path / "work") as ctx:  # fmt: skip
        return planner.plan(ctx, info, n_out, None)


def test_planner_detects_around_a_jump(tmp_path: Path) -> None:
    """Linear motion with a 40 px jump between frames 4 and 5: with stride 3 the planner
    detects the anchors 0, 3, 6, 9, 11 and, because the face jumped between 3 and 6, 4 and 5;
    the other frames are interpolated. Its matrices are the aligner's on the true points."""
    n = 12
    truth = [linear_points(i) + (np.array([40.0, 0.0]) if i >= 5 else 0.0) for i in range(n)]
    detector = KnownFaces(dict(enumerate(truth)))
    video = _index_video(tmp_path / "index.mp4", n)
    plan = _plan(tmp_path, video, SourcePlanner(detector, 512, 2, detect_stride=3, max_motion=8.0), n)
    assert sorted(detector.calls) == [0, 3, 4, 5, 6, 9, 11]
    assert plan.has_face.all() and plan.frame_count == n
    np.testing.assert_allclose(plan.raw_matrices, expected_matrices(truth), rtol=0, atol=MATRIX_TOL)
    # The detected frames carry the detector's points exactly (no interpolation touched them).
    want = expected_matrices(truth)
    assert np.array_equal(plan.raw_matrices[[0, 3, 4, 5, 6]], want[[0, 3, 4, 5, 6]])


def test_default_stride_plans_exactly_as_every_frame(tmp_path: Path) -> None:
    """Real dlib detections on the first frames of the bundled clip: the default planner's
    matrices and boxes equal detecting each frame in turn and aligning, bit for bit."""
    video, n = ROOT / "assets" / "demo1_video.mp4", 3
    detector = DlibFaceDetector()
    info = probe_video(video)
    with FrameReader(video, info.width, info.height) as reader:
        frames = list(itertools.islice(reader, n))
    faces = [detector.detect(f) for f in frames]
    assert all(f is not None for f in faces)
    strided = [face for _, face in detect_strided(detector, frames, 2)]  # default stride: 1
    for a, b in zip(faces, strided, strict=True):
        assert a.box == b.box and np.array_equal(a.points, b.points)
    plan = _plan(tmp_path, video, SourcePlanner(detector, 512, 2), n)
    assert np.array_equal(plan.raw_matrices, expected_matrices([f.points for f in faces]))
    assert np.array_equal(plan.boxes, np.array([f.box for f in faces], np.float32))
