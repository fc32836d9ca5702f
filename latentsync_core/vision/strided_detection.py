"""Face detection on every k-th frame, with the landmarks of the frames in between
interpolated linearly where the face moved little.

Frames ``0, k, 2k, ...`` and the last frame are "anchors" and always go through the
detector. The frames between two anchors get linearly interpolated points and box when
both anchors found a face and no alignment point moved more than ``max_motion`` pixels
from one anchor to the next; otherwise (fast motion, a cut, a face lost or found) every
frame in between is detected as well, so a jump is never smoothed over. What it cannot
see: a face missing only on frames between two anchors that both found it close by (a
short detector dropout, or a cut away and back within k frames) gets interpolated points.

``stride=1`` is exactly ``detect_in_order``: every frame detected, nothing interpolated.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from latentsync_core.vision.face_detection import Face, FaceDetector, detect_in_order, per_thread_detect

# Default for the largest anchor-to-anchor move (frame pixels) that is still interpolated.
DEFAULT_MAX_MOTION = 4.0


def interpolate_face(a: Face, b: Face, t: float) -> Face:
    """The face a fraction ``t`` (0..1) of the way from ``a`` to ``b``: points and box
    linearly interpolated (in float64, not rounded: a linear motion is reproduced exactly)."""
    box = tuple(float(u + t * (v - u)) for u, v in zip(a.box, b.box, strict=True))
    points = a.points.astype(np.float64) + t * (b.points.astype(np.float64) - a.points.astype(np.float64))
    return Face(box=box, points=points)  # type: ignore[arg-type]


def can_interpolate(a: Face | None, b: Face | None, max_motion: float) -> bool:
    """True when both anchors have a face and no point moved more than ``max_motion`` px."""
    if a is None or b is None:
        return False
    moved = np.linalg.norm(np.asarray(b.points, np.float64) - np.asarray(a.points, np.float64), axis=1)
    return bool(moved.max() <= max_motion)


@contextmanager
def _submitter(detector: FaceDetector, workers: int) -> Iterator[Callable[[np.ndarray], Future]]:
    """``submit(frame) -> Future[Face | None]``: on ``workers`` threads (each with its own
    clone of the detector, as ``detect_in_order``), or at once in the caller's thread."""
    clone = getattr(detector, "clone", None)
    if workers <= 1 or clone is None:

        def run_now(frame: np.ndarray) -> Future:
            fut: Future = Future()
            try:
                fut.set_result(detector.detect(frame))
            except BaseException as exc:  # surfaces at .result(), in frame order
                fut.set_exception(exc)
            return fut

        yield run_now
        return
    run = per_thread_detect(clone)
    with ThreadPoolExecutor(workers, thread_name_prefix="detect") as pool:
        queued: deque[Future] = deque()

        def submit(frame: np.ndarray) -> Future:
            while queued and queued[0].done():
                queued.popleft()
            queued.append(pool.submit(run, frame))
            return queued[-1]

        try:
            yield submit
        finally:
            for fut in queued:  # the consumer stopped early: drop what has not started
                fut.cancel()


@dataclass
class _Segment:
    """The frames after one anchor up to and including the next anchor."""

    between: list[np.ndarray]
    anchor_frame: np.ndarray
    anchor: Future
    previous: Future | None  # the preceding anchor's detection (None for frame 0)
    inner: list[Future | Face] | None = field(default=None)  # decided: per in-between frame

    def decide(self, submit: Callable[[np.ndarray], Future], max_motion: float) -> None:
        """Interpolate the in-between frames, or send them to the detector."""
        if self.inner is not None:
            return
        if not self.between:
            self.inner = []
            return
        a = self.previous.result() if self.previous is not None else None
        b = self.anchor.result()
        if can_interpolate(a, b, max_motion):
            n = len(self.between) + 1
            self.inner = [interpolate_face(a, b, i / n) for i in range(1, n)]  # type: ignore[arg-type]
        else:
            self.inner = [submit(f) for f in self.between]

    def results(self) -> Iterator[tuple[np.ndarray, Face | None]]:
        assert self.inner is not None
        for frame, face in zip(self.between, self.inner, strict=True):
            yield frame, face.result() if isinstance(face, Future) else face
        yield self.anchor_frame, self.anchor.result()


def detect_strided(
    detector: FaceDetector,
    frames: Iterable[np.ndarray],
    workers: int = 1,
    stride: int = 1,
    max_motion: float = DEFAULT_MAX_MOTION,
) -> Iterator[tuple[np.ndarray, Face | None]]:
    """``(frame, face)`` for each frame, in order, detecting every ``stride``-th frame and
    interpolating between them where allowed (module docstring). About ``workers + 1``
    segments of ``stride`` frames are held in memory at a time."""
    if stride < 1 or max_motion < 0:
        raise ValueError(f"detect stride must be at least 1 and max_motion not negative ({stride}, {max_motion})")
    if stride == 1:
        yield from detect_in_order(detector, frames, workers)
        return
    limit = max(2, workers + 1)  # segments in flight: about one anchor per worker
    with _submitter(detector, workers) as submit:
        pending: deque[_Segment] = deque()
        between: list[np.ndarray] = []
        previous: Future | None = None
        for index, frame in enumerate(frames):
            if index % stride:
                between.append(frame)
                continue
            previous = _push(pending, between, frame, submit(frame), previous)
            between = []
            _decide_ready(pending, submit, max_motion)
            while len(pending) > limit:
                seg = pending.popleft()
                seg.decide(submit, max_motion)
                yield from seg.results()
        if between:  # frames after the last anchor: the last frame becomes one
            last = between.pop()
            _push(pending, between, last, submit(last), previous)
        while pending:
            seg = pending.popleft()
            _decide_ready(pending, submit, max_motion)
            seg.decide(submit, max_motion)
            yield from seg.results()


def _push(
    pending: deque[_Segment], between: list[np.ndarray], frame: np.ndarray, anchor: Future, previous: Future | None
) -> Future:
    pending.append(_Segment(between, frame, anchor, previous))
    return anchor


def _decide_ready(pending: deque[_Segment], submit: Callable[[np.ndarray], Future], max_motion: float) -> None:
    """Decide every segment whose two anchors are already detected, so the frames that
    need detecting join the pool's queue early instead of when they are emitted."""
    for seg in pending:
        if seg.inner is None and seg.anchor.done() and (seg.previous is None or seg.previous.done()):
            seg.decide(submit, max_motion)
