"""Every face of a video, followed over time: face tracks.

One decoding pass (25 fps, as a job sees the video) detects every plausible face of each
frame (``detect_all``, on several threads) and feeds the shot-change detector
(``shots.py``). Then, shot by shot, detections are linked into tracks frame after frame: a
track takes the detection that overlaps its last box (IoU >= ``min_iou``) or whose centre
moved less than ``max_centre_shift`` face sizes, cheapest pairs first (cost ``1 - IoU +
shift``); a track survives ``max_gap`` frames without a detection (those frames have no box:
a job passes them through), and ends at the end of its shot. Tracks with fewer than
``min_detections`` detections are dropped (false detections rarely persist).

Track ids are ``0 .. n-1`` in the order of their first frame (then left to right): the same
video and detector give the same ids, which ``face=track:<id>`` relies on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from latentsync_core.common.errors import MediaError
from latentsync_core.media.constants import FPS
from latentsync_core.media.info import MediaInfo
from latentsync_core.media.probe import probe_video
from latentsync_core.media.video_io import FrameReader
from latentsync_core.vision.boxes import box_iou, centre_shift
from latentsync_core.vision.face_detection import Box, Face, FaceDetector, default_detect_workers, detect_in_order
from latentsync_core.vision.shots import ShotCutter, ShotSettings, shot_bounds

FrameFaces = Sequence[Face]


@dataclass(frozen=True)
class TrackSettings:
    min_iou: float = 0.3  # overlap with the track's last box that continues it
    max_centre_shift: float = 0.5  # or: centre moved at most this many face sizes (max side of the box)
    max_gap: int = 2  # frames a track may miss and still continue
    min_detections: int = 3  # shorter tracks are dropped


@dataclass
class FaceTrack:
    """One face over the frames ``first .. last`` of one shot; rows are NaN where it was missed."""

    id: int
    shot: int
    first: int
    boxes: np.ndarray  # (frames, 4) float64 x1, y1, x2, y2
    points: np.ndarray  # (frames, 3, 2) float64: the three alignment points
    thumbnail: bytes | None = field(default=None, repr=False)  # JPEG of the face (face_sheet.py)

    @property
    def length(self) -> int:
        return len(self.boxes)

    @property
    def last(self) -> int:
        return self.first + self.length - 1

    @property
    def detected(self) -> np.ndarray:
        return ~np.isnan(self.boxes[:, 0])

    @property
    def detections(self) -> int:
        return int(self.detected.sum())

    def face_at(self, frame: int) -> Face | None:
        """The detection in ``frame`` (None outside the track or where it was missed)."""
        i = frame - self.first
        if not 0 <= i < self.length or np.isnan(self.boxes[i, 0]):
            return None
        return Face(box=tuple(float(v) for v in self.boxes[i]), points=self.points[i].copy())  # type: ignore[arg-type]

    def _areas(self) -> np.ndarray:
        b = self.boxes[self.detected]
        return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])

    @property
    def total_area(self) -> float:
        """Summed box area over the detections: size and time on screen."""
        return float(self._areas().sum())

    @property
    def size(self) -> tuple[float, float]:
        """Median box width and height (pixels)."""
        b = self.boxes[self.detected]
        return float(np.median(b[:, 2] - b[:, 0])), float(np.median(b[:, 3] - b[:, 1]))

    @property
    def best_frame(self) -> int:
        """The frame of the largest detection (the thumbnail's)."""
        return self.first + int(np.flatnonzero(self.detected)[int(np.argmax(self._areas()))])

    def boxes_per_second(self, fps: float = FPS) -> list[tuple[int, Box]]:
        """(second, median box of the detections in that second) for each second it is seen."""
        frames = self.first + np.flatnonzero(self.detected)
        boxes = self.boxes[self.detected]
        seconds = (frames // fps).astype(int)
        return [
            (int(s), tuple(float(v) for v in np.median(boxes[seconds == s], axis=0)))  # type: ignore[misc]
            for s in np.unique(seconds)
        ]

    def to_json(self, fps: float = FPS, include_frames: bool = False) -> dict:
        w, h = self.size
        out: dict = {
            "id": self.id,
            "shot": self.shot,
            "first_frame": self.first,
            "last_frame": self.last,
            "start": round(self.first / fps, 3),
            "end": round((self.last + 1) / fps, 3),
            "detections": self.detections,
            "size": [round(w, 1), round(h, 1)],
            "boxes_per_second": [
                {"second": s, "box": [round(v, 1) for v in box]} for s, box in self.boxes_per_second(fps)
            ],
        }
        if include_frames:  # exact: a JSON round trip gives the same track
            out["boxes"] = [None if np.isnan(b[0]) else b.tolist() for b in self.boxes]
            out["points"] = [None if np.isnan(p[0, 0]) else p.tolist() for p in self.points]
        return out

    @classmethod
    def from_json(cls, data: dict) -> FaceTrack:
        if "boxes" not in data:
            raise ValueError("track JSON without per-frame boxes (write it with include_frames=True)")
        boxes = np.array([b if b is not None else [np.nan] * 4 for b in data["boxes"]], np.float64)
        points = np.array([p if p is not None else [[np.nan] * 2] * 3 for p in data["points"]], np.float64)
        return cls(int(data["id"]), int(data["shot"]), int(data["first_frame"]), boxes, points.reshape(-1, 3, 2))


@dataclass
class FaceTracks:
    """Every face track of a video, with its shots."""

    tracks: list[FaceTrack]
    frames: int  # frames of the video at ``fps``
    width: int
    height: int
    shots: list[tuple[int, int]]  # [start, end) frame ranges
    detector: str
    fps: float = FPS

    @property
    def ids(self) -> list[int]:
        return [t.id for t in self.tracks]

    def get(self, track_id: int) -> FaceTrack | None:
        return next((t for t in self.tracks if t.id == track_id), None)

    def in_shot(self, shot: int) -> list[FaceTrack]:
        return [t for t in self.tracks if t.shot == shot]

    def to_json(self, include_frames: bool = False) -> dict:
        return {
            "frames": self.frames,
            "fps": self.fps,
            "width": self.width,
            "height": self.height,
            "detector": self.detector,
            "shots": [{"start_frame": a, "end_frame": b} for a, b in self.shots],
            "tracks": [t.to_json(self.fps, include_frames) for t in self.tracks],
        }

    @classmethod
    def from_json(cls, data: dict) -> FaceTracks:
        return cls(
            tracks=[FaceTrack.from_json(t) for t in data["tracks"]],
            frames=int(data["frames"]),
            width=int(data["width"]),
            height=int(data["height"]),
            shots=[(int(s["start_frame"]), int(s["end_frame"])) for s in data["shots"]],
            detector=str(data["detector"]),
            fps=float(data["fps"]),
        )


@dataclass
class _Open:
    """A track being built: its detections so far."""

    shot: int
    frames: list[int]
    faces: list[Face]
    misses: int = 0


def link_tracks(
    detections: Sequence[FrameFaces], shots: Sequence[tuple[int, int]], settings: TrackSettings | None = None
) -> list[FaceTrack]:
    """Tracks from each frame's faces, never across a shot boundary (module docstring)."""
    s = settings or TrackSettings()
    done: list[_Open] = []
    for shot, (start, end) in enumerate(shots):
        open_: list[_Open] = []
        for frame in range(start, end):
            faces = list(detections[frame])
            pairs = []
            for ti, track in enumerate(open_):
                last = track.faces[-1].box
                for fi, face in enumerate(faces):
                    iou, shift = box_iou(last, face.box), centre_shift(last, face.box)
                    if iou >= s.min_iou or shift <= s.max_centre_shift:
                        pairs.append((1.0 - iou + shift, ti, fi))
            taken_t: set[int] = set()
            taken_f: set[int] = set()
            for _, ti, fi in sorted(pairs):
                if ti not in taken_t and fi not in taken_f:
                    taken_t.add(ti)
                    taken_f.add(fi)
                    open_[ti].frames.append(frame)
                    open_[ti].faces.append(faces[fi])
                    open_[ti].misses = 0
            still: list[_Open] = []
            for ti, track in enumerate(open_):
                if ti not in taken_t:
                    track.misses += 1
                (done if track.misses > s.max_gap else still).append(track)
            new = sorted((f for fi, f in enumerate(faces) if fi not in taken_f), key=lambda f: (f.box[0], f.box[1]))
            open_ = still + [_Open(shot, [frame], [f]) for f in new]
        done += open_
    kept = [t for t in done if len(t.frames) >= s.min_detections]
    kept.sort(key=lambda t: (t.frames[0], t.faces[0].box[0], t.faces[0].box[1]))
    return [_finish(i, t) for i, t in enumerate(kept)]


def _finish(track_id: int, track: _Open) -> FaceTrack:
    first, n = track.frames[0], track.frames[-1] - track.frames[0] + 1
    boxes = np.full((n, 4), np.nan)
    points = np.full((n, 3, 2), np.nan)
    for frame, face in zip(track.frames, track.faces, strict=True):
        boxes[frame - first] = face.box
        points[frame - first] = np.asarray(face.points, np.float64)
    return FaceTrack(track_id, track.shot, first, boxes, points)


class _AllFaces:
    """A detector whose ``detect`` gives every face (so ``detect_in_order`` runs it on threads)."""

    def __init__(self, detector: FaceDetector):
        self.name = detector.name
        self._detector = detector
        if hasattr(detector, "clone"):
            self.clone = lambda: _AllFaces(detector.clone())  # type: ignore[attr-defined]

    def detect(self, frame_rgb: np.ndarray) -> list[Face]:  # type: ignore[override]
        detect_all = getattr(self._detector, "detect_all", None)
        if detect_all is not None:
            return list(detect_all(frame_rgb))
        face = self._detector.detect(frame_rgb)  # a one-face back-end: its face is the only one
        return [] if face is None else [face]


def track_faces(
    video_path: str | Path,
    detector: FaceDetector,
    info: MediaInfo | None = None,
    workers: int | None = None,
    settings: TrackSettings | None = None,
    shot_settings: ShotSettings | None = None,
    max_frames: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_frame: Callable[[np.ndarray], None] | None = None,
) -> FaceTracks:
    """Detect, cut into shots and link every face of the video (module docstring).

    ``progress(done, estimated_total)`` is called every 8 frames (it may raise to stop);
    ``on_frame`` sees every decoded frame in order (a job keeps them in its frame store).
    Decoding stops with ``VIDEO_TOO_LONG`` past ``max_frames``; a video without frames is
    ``INVALID_VIDEO``.
    """
    info = info or probe_video(video_path)
    workers = default_detect_workers() if workers is None else workers
    estimate = max(1, round(info.duration * FPS))
    cutter = ShotCutter(shot_settings)
    detections: list[list[Face]] = []
    with FrameReader(video_path, info.width, info.height, max_frames=max_frames) as reader:
        for frame, faces in detect_in_order(_AllFaces(detector), reader, workers):  # type: ignore[arg-type]
            detections.append(faces)  # type: ignore[arg-type]
            cutter.add(frame)
            if on_frame is not None:
                on_frame(frame)
            if progress is not None and len(detections) % 8 == 0:
                progress(len(detections), max(estimate, len(detections)))
        errors = reader.errors
    if not detections:
        raise MediaError("INVALID_VIDEO", f"no decodable video frames ({errors.strip()[:200] or 'empty stream'})")
    if progress is not None:
        progress(len(detections), len(detections))
    shots = shot_bounds(cutter.finish(), len(detections))
    tracks = link_tracks(detections, shots, settings)
    return FaceTracks(tracks, len(detections), info.width, info.height, shots, detector.name)
