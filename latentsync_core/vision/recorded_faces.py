"""Faces of a video recorded once by a real detector and replayed later as a detector.

A benchmark on a machine that lacks the detector (the GPU machine has no dlib landmark
model) replays what the real detector found here: ``record_faces`` runs a detector over a
video's frames and keeps each frame's box and alignment points with a small grey thumbnail
of the frame; ``RecordedFaceDetector`` answers a frame with the face of the recorded frame
whose thumbnail is nearest. Matching by content, not by call order, keeps the answers
right whatever order or threads the caller uses and across repeated jobs. A frame that
matches no recorded frame (another video) raises ``FACES_NOT_RECORDED`` rather than
returning another frame's face.

Decoders of different ffmpeg versions can round a few pixels differently; thumbnails average
those away, and the tolerance (mean absolute difference in 8-bit levels) is far below what
separates two different videos.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from latentsync_core.common.errors import CodedError
from latentsync_core.vision.face_detection import Face, FaceDetector, detect_in_order

THUMB_SHORT_SIDE = 16  # pixels of the thumbnail's shorter side
MATCH_TOLERANCE = 4.0  # largest mean |difference| (8-bit levels) of a matching thumbnail


def thumbnail(frame_rgb: np.ndarray) -> np.ndarray:
    """A small grey copy of an (H, W, 3) uint8 frame, shorter side ``THUMB_SHORT_SIDE``."""
    h, w = frame_rgb.shape[:2]
    scale = THUMB_SHORT_SIDE / min(h, w)
    grey = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class FaceRecording:
    """One video's faces: ``boxes`` (F, 4) and ``points`` (F, 3, 2) float64, NaN where the
    detector found no face; ``thumbs`` (F, h, w) uint8; the frame size and the detector."""

    boxes: np.ndarray
    points: np.ndarray
    thumbs: np.ndarray
    width: int
    height: int
    detector: str

    @property
    def frame_count(self) -> int:
        return len(self.boxes)

    def face(self, index: int) -> Face | None:
        if np.isnan(self.boxes[index]).any():
            return None
        return Face(box=tuple(float(v) for v in self.boxes[index]), points=self.points[index].copy())  # type: ignore[arg-type]

    def save(self, path: str | Path) -> None:
        size = np.array([self.width, self.height])
        np.savez_compressed(
            path, boxes=self.boxes, points=self.points, thumbs=self.thumbs, size=size, detector=np.array(self.detector)
        )

    @classmethod
    def load(cls, path: str | Path) -> FaceRecording:
        with np.load(path) as f:
            width, height = (int(v) for v in f["size"])
            return cls(f["boxes"], f["points"], f["thumbs"], width, height, str(f["detector"]))


def record_faces(detector: FaceDetector, frames: Iterable[np.ndarray], workers: int = 1) -> FaceRecording:
    """Run ``detector`` over ``frames`` (in order, on ``workers`` threads) and keep what it found."""
    boxes, points, thumbs = [], [], []
    size = (0, 0)
    for frame, face in detect_in_order(detector, frames, workers):
        size = (frame.shape[1], frame.shape[0])
        thumbs.append(thumbnail(frame))
        boxes.append(np.full(4, np.nan) if face is None else np.asarray(face.box, np.float64))
        points.append(np.full((3, 2), np.nan) if face is None else np.asarray(face.points, np.float64))
    if not boxes:
        raise ValueError("no frames to record")
    return FaceRecording(np.stack(boxes), np.stack(points), np.stack(thumbs), size[0], size[1], detector.name)


class RecordedFaceDetector:
    """A ``FaceDetector`` that answers from a ``FaceRecording`` (see the module's docstring).
    Stateless apart from ``worst_match``, the largest thumbnail difference it accepted."""

    def __init__(self, recording: FaceRecording, tolerance: float = MATCH_TOLERANCE):
        self.recording, self.tolerance = recording, tolerance
        self.name = f"recorded-{recording.detector}"  # cached templates depend on it
        self._thumbs = recording.thumbs.reshape(recording.frame_count, -1).astype(np.int16)
        self._lock = threading.Lock()
        self.worst_match = 0.0
        self.calls = 0

    @classmethod
    def from_file(cls, path: str | Path) -> RecordedFaceDetector:
        return cls(FaceRecording.load(path))

    def clone(self) -> RecordedFaceDetector:
        return self  # safe to share between threads

    def match(self, frame_rgb: np.ndarray) -> tuple[int, float]:
        """(index of the nearest recorded frame, its mean |difference| in 8-bit levels)."""
        rec = self.recording
        if frame_rgb.shape[:2] != (rec.height, rec.width):
            raise CodedError(
                "FACES_NOT_RECORDED",
                f"frame of {frame_rgb.shape[1]}x{frame_rgb.shape[0]}; the recording is of {rec.width}x{rec.height}",
            )
        diffs = np.abs(self._thumbs - thumbnail(frame_rgb).reshape(1, -1).astype(np.int16)).mean(axis=1)
        index = int(diffs.argmin())
        return index, float(diffs[index])

    def detect(self, frame_rgb: np.ndarray) -> Face | None:
        index, diff = self.match(frame_rgb)
        if diff > self.tolerance:
            raise CodedError(
                "FACES_NOT_RECORDED",
                f"no recorded frame matches (nearest differs by {diff:.1f} levels, tolerance {self.tolerance:g})",
            )
        with self._lock:
            self.worst_match = max(self.worst_match, diff)
            self.calls += 1
        return self.recording.face(index)
