"""Face detection behind one interface: a box and the three alignment points.

Back-ends:
- InsightFace ``FaceAnalysis`` (detection + 106-point landmarks), as upstream, whenever its
  ONNX weights are under the auxiliary folder;
- an embedded default, dlib's HOG detector with the 68-point shape predictor shipped by the
  ``face-recognition-models`` wheel, so everything works offline on a fresh machine.

Detection runs on a downscaled copy of the frame; landmarks are mapped back to full size.
Among the faces found, the largest plausible one is used (upstream's size and aspect filters);
``detect_all`` gives every plausible face instead (face tracks, ``face_tracks.py``).

How far the embedded detector scales a frame down follows from the smallest face it must
find: HOG scans an ~80 px window, so a short side scaled to ``s`` px finds faces down to
about ``80 / s`` of it. ``detect`` (one face per frame: a talking head fills the picture)
uses 480 px, faces down to 1/6 of the short side; ``detect_all`` (tracks: a two-shot or an
interview, where each person is a fraction of the frame) uses 960 px, down to 1/12. The
two-shot of two 540x960 portraits side by side has ~100 px faces in a
960 px short side: at 480 px they shrink to ~50 px and are missed.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import cv2
import numpy as np

log = logging.getLogger(__name__)

MIN_FACE_W, MIN_FACE_H = 50, 80  # upstream's filters, in full-frame pixels
MIN_ASPECT, MAX_ASPECT = 0.2, 1.5

T = TypeVar("T")
Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in frame pixels


@dataclass(frozen=True)
class Face:
    box: Box
    points: np.ndarray  # (3, 2): left eyebrow centre, right eyebrow centre, nose centre (image left/right)


class FaceDetector(Protocol):
    name: str

    def detect(self, frame_rgb: np.ndarray) -> Face | None:
        """The main face of an (H, W, 3) uint8 RGB frame, or None."""


class MultiFaceDetector(FaceDetector, Protocol):
    def detect_all(self, frame_rgb: np.ndarray) -> list[Face]:
        """Every plausible face of an (H, W, 3) uint8 RGB frame, largest first."""


def _plausible(box: Box, min_w: float = MIN_FACE_W, min_h: float = MIN_FACE_H) -> bool:
    w, h = box[2] - box[0], box[3] - box[1]
    return w >= min_w and h >= min_h and MIN_ASPECT <= w / h <= MAX_ASPECT


def _by_size(candidates: Iterable[tuple[T, Box]]) -> list[tuple[T, Box]]:
    """The ``(face, box)`` pairs largest box first (a stable sort: equal boxes keep their order)."""
    return sorted(candidates, key=lambda c: -(c[1][2] - c[1][0]) * (c[1][3] - c[1][1]))


def _largest(candidates: Iterable[tuple[T, Box]]) -> tuple[T, Box] | None:
    """The ``(face, box)`` with the largest box (the first one on a tie), or None."""
    best, best_area = None, 0.0
    for face, box in candidates:
        area = (box[2] - box[0]) * (box[3] - box[1])
        if area > best_area:
            best, best_area = (face, box), area
    return best


class DlibFaceDetector:
    """HOG detector + 68-point landmarks (weights from the face-recognition-models wheel)."""

    name = "dlib-hog"

    def __init__(self, detect_size: int = 480, all_faces_size: int = 960, upsample: int = 0):
        import dlib  # local: a heavy import only this back-end needs

        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(_dlib_landmark_model()))
        self._rect = dlib.rectangle
        self.detect_size = detect_size
        self.all_faces_size = all_faces_size
        self.upsample = upsample

    def clone(self) -> DlibFaceDetector:
        """A detector for another thread: HOG scanners keep scratch state, so each thread
        needs its own; the (read-only) landmark model is shared."""
        import dlib

        other = object.__new__(DlibFaceDetector)
        other.__dict__.update(self.__dict__)
        other._detector = dlib.get_frontal_face_detector()
        return other

    def _candidates(self, frame_rgb: np.ndarray, size: int) -> tuple[np.ndarray, float, list[tuple[object, Box]]]:
        """The grey frame downscaled to a short side of ``size`` px (never upscaled), its
        scale and the plausible ``(rect, box)`` found."""
        h, w = frame_rgb.shape[:2]
        scale = min(1.0, size / min(h, w))  # HOG finds faces down to ~70 px of the scaled frame
        small = cv2.resize(frame_rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        gray_small = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        rects = self._detector(gray_small, self.upsample)
        boxes = [(r, (r.left() / scale, r.top() / scale, r.right() / scale, r.bottom() / scale)) for r in rects]
        # dlib boxes cover brows to chin and are square: the height filter is upstream's
        # (taller) InsightFace box rule scaled to that shape.
        return gray_small, scale, [(r, box) for r, box in boxes if _plausible(box, MIN_FACE_W, MIN_FACE_W)]

    def _face(self, gray_small: np.ndarray, scale: float, rect: object, box: Box) -> Face:
        shape = self._predictor(gray_small, rect)
        pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64) / scale
        return Face(box=box, points=np.round(dlib68_to_points3(pts)))

    def detect(self, frame_rgb: np.ndarray) -> Face | None:
        gray_small, scale, candidates = self._candidates(frame_rgb, self.detect_size)
        best = _largest(candidates)
        return None if best is None else self._face(gray_small, scale, *best)

    def detect_all(self, frame_rgb: np.ndarray) -> list[Face]:
        gray_small, scale, candidates = self._candidates(frame_rgb, self.all_faces_size)
        return [self._face(gray_small, scale, rect, box) for rect, box in _by_size(candidates)]


def per_thread_detect(clone: Callable[[], FaceDetector]) -> Callable[[np.ndarray], Face | None]:
    """``detect(frame)`` that gives each calling thread its own detector from ``clone``
    (dlib's and InsightFace's objects are not safe to share between threads)."""
    local = threading.local()

    def run(frame: np.ndarray) -> Face | None:
        if not hasattr(local, "detector"):
            local.detector = clone()
        return local.detector.detect(frame)

    return run


def detect_in_order(
    detector: FaceDetector, frames: Iterable[np.ndarray], workers: int = 1
) -> Iterator[tuple[np.ndarray, Face | None]]:
    """``(frame, face)`` for each frame, in order. Detectors that can be cloned (dlib's
    releases the GIL while it scans) run on ``workers`` threads with a bounded look-ahead,
    so memory stays at a few frames per worker."""
    clone = getattr(detector, "clone", None)
    if workers <= 1 or clone is None:
        for frame in frames:
            yield frame, detector.detect(frame)
        return
    run = per_thread_detect(clone)
    pending: deque = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="detect") as pool:
        try:
            for frame in frames:
                pending.append((frame, pool.submit(run, frame)))
                if len(pending) >= 2 * workers:
                    f, fut = pending.popleft()
                    yield f, fut.result()
            while pending:
                f, fut = pending.popleft()
                yield f, fut.result()
        finally:
            for _, fut in pending:  # the consumer stopped early: drop the rest
                fut.cancel()


def default_detect_workers() -> int:
    """All cores but one (that one decodes and feeds the GPU), at least one."""
    return max(1, (os.cpu_count() or 1) - 1)


def dlib68_to_points3(lmk: np.ndarray) -> np.ndarray:
    """Map the 68-point layout to the three alignment points of the 106-point layout:
    the centres of the two eyebrows (17-21, 22-26) and the middle of the nose (bridge
    and the nostril wings: 28, 29, 31, 35)."""
    return np.stack([lmk[17:22].mean(0), lmk[22:27].mean(0), lmk[[28, 29, 31, 35]].mean(0)])


def _dlib_landmark_model() -> Path:
    # Located without importing the package: its __init__ needs pkg_resources.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the face-recognition-models package is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "shape_predictor_68_face_landmarks.dat"
    if not path.is_file():
        raise RuntimeError(f"dlib landmark model missing: {path}")
    return path


class InsightFaceDetector:
    """Upstream's detector: InsightFace ``FaceAnalysis`` with detection and 106 landmarks."""

    name = "insightface"

    def __init__(self, root: Path, device: str = "cpu", detect_size: int = 512, threshold: float = 0.5):
        from insightface.app import FaceAnalysis  # optional dependency (extra "insightface")

        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.startswith("cuda") else None
        self._app = FaceAnalysis(
            allowed_modules=["detection", "landmark_2d_106"],
            root=str(root),
            providers=providers or ["CPUExecutionProvider"],
        )
        ctx = int(device.split(":")[1]) if device.startswith("cuda:") else (0 if device == "cuda" else -1)
        self._app.prepare(ctx_id=ctx, det_size=(detect_size, detect_size))
        self.threshold = threshold

    def _candidates(self, frame_rgb: np.ndarray) -> list[tuple[object, Box]]:
        boxes = ((face, tuple(float(v) for v in face.bbox)) for face in self._app.get(frame_rgb))
        return [(f, box) for f, box in boxes if f.det_score >= self.threshold and _plausible(box)]

    @staticmethod
    def _face(face: object, box: Box) -> Face:
        lmk = face.landmark_2d_106  # type: ignore[attr-defined]
        points = np.stack([lmk[[43, 48, 49, 51, 50]].mean(0), lmk[101:106].mean(0), lmk[[74, 77, 83, 86]].mean(0)])
        return Face(box=box, points=np.round(points))

    def detect(self, frame_rgb: np.ndarray) -> Face | None:
        best = _largest(self._candidates(frame_rgb))
        return None if best is None else self._face(*best)

    def detect_all(self, frame_rgb: np.ndarray) -> list[Face]:
        return [self._face(face, box) for face, box in _by_size(self._candidates(frame_rgb))]


def insightface_available(root: Path) -> bool:
    """True when the InsightFace package and its buffalo_l detection/landmark models exist."""
    models = root / "models" / "buffalo_l"
    has_weights = (models / "det_10g.onnx").is_file() and (models / "2d106det.onnx").is_file()
    return has_weights and importlib.util.find_spec("insightface") is not None


def make_face_detector(auxiliary_root: Path | None, device: str = "cpu") -> FaceDetector:
    """InsightFace when its weights exist, else the embedded dlib detector."""
    if auxiliary_root is not None and insightface_available(auxiliary_root):
        log.info("face detector: InsightFace from %s", auxiliary_root)
        return InsightFaceDetector(auxiliary_root, device)
    log.info("face detector: embedded dlib HOG + 68 landmarks (no InsightFace weights found)")
    return DlibFaceDetector()
