"""Planning the source frames of a job: which source frame each output frame shows (the
video is played forward and backward when the audio is longer, or as the job's
``sync_mode`` says: ``length_modes.py``), the face alignment matrix
of every frame (from one detection pass, or from a cached template), and the frames
themselves, window by window (streamed in order, or from a disk store when the video
loops). Frames without a face borrow the nearest face's crop for the UNet's input and are
never pasted back; a video without any face fails with ``NO_FACE``."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from latentsync_core.common.errors import CodedError, MediaError
from latentsync_core.inference.context import JobContext
from latentsync_core.inference.length_modes import (
    LengthPlan,
    bounce_index,
    frames_to_read,
    keeps_frame_store,
    plan_length,
)
from latentsync_core.inference.stages import Stage
from latentsync_core.inference.template_cache import Template
from latentsync_core.media.constants import FPS
from latentsync_core.media.info import MediaInfo
from latentsync_core.media.video_io import FrameReader
from latentsync_core.storage.frame_store import FrameStore
from latentsync_core.vision.alignment import FaceAligner
from latentsync_core.vision.face_detection import FaceDetector
from latentsync_core.vision.strided_detection import DEFAULT_MAX_MOTION, detect_strided

WINDOW = 16  # frames per UNet call, as the model was trained


def ping_pong_index(j: int, n_source: int) -> int:
    """Source frame for output frame ``j``: forward, then backward, then forward, ..."""
    return bounce_index(j, n_source)


def no_face_error() -> CodedError:
    return CodedError("NO_FACE", "no face was found in any frame of the video")


@dataclass
class Window:
    """One UNet call's worth of output frames ``start .. start + count``."""

    start: int
    count: int
    src_idx: np.ndarray  # (count,) source frame of each output frame
    frames: torch.Tensor  # (count, H, W, 3) uint8 source frames
    matrices: torch.Tensor  # (count, 2, 3) alignment matrices
    has_face: np.ndarray  # (count,) bool: the frames that get the generated face
    faces: torch.Tensor | None = None  # (count, 3, r, r) aligned faces in [-1, 1] (conditioning)


@dataclass
class SourcePlan:
    info: MediaInfo
    matrices: np.ndarray  # (F, 2, 3) float32, a valid crop for every source frame
    has_face: np.ndarray  # (F,) bool
    store: FrameStore | None  # the decoded frames, when output frames need random access
    raw_matrices: np.ndarray  # (F, 2, 3), NaN where no face: what a template keeps
    boxes: np.ndarray  # (F, 4) face boxes x1, y1, x2, y2, NaN where no face (sync scoring)
    complete: bool  # F is every frame of the video
    length: LengthPlan | None = None  # the job's sync_mode plan; None: bounce over the F frames
    face_choice: dict | None = None  # with a face selection: which track each shot used and why

    def source_index(self, start: int, count: int) -> np.ndarray:
        """The source frame of output frames ``start .. start + count - 1``."""
        if self.length is not None:
            return self.length.source_index[start : start + count]
        return np.array([ping_pong_index(j, self.frame_count) for j in range(start, start + count)])

    @property
    def frame_count(self) -> int:
        return len(self.has_face)

    def output_boxes(self, n_out: int) -> list[tuple[float, float, float, float] | None]:
        """The face box each output frame shows (None where its source frame has no face)."""
        out: list[tuple[float, float, float, float] | None] = []
        for i in self.source_index(0, n_out):
            out.append(tuple(float(v) for v in self.boxes[i]) if self.has_face[i] else None)  # type: ignore[misc]
        return out

    @property
    def frames_without_face(self) -> list[int]:
        return np.flatnonzero(~self.has_face).tolist()

    def windows(self, video_path: Path, n_out: int) -> Iterator[Window]:
        """The output's windows with their source frames: from the store, or decoded
        again in order (without a store, output frames follow the source one to one)."""
        reader = None if self.store is not None else FrameReader(video_path, self.info.width, self.info.height)
        try:
            for start in range(0, n_out, WINDOW):
                count = min(WINDOW, n_out - start)
                src_idx = self.source_index(start, count)
                # One buffer per window, filled in place: it is also the window's output (``memory.py``).
                frames = np.empty((count, self.info.height, self.info.width, 3), np.uint8)
                if self.store is not None:  # decoded on the store's threads
                    self.store.read_into([int(i) for i in src_idx], frames)
                else:
                    for k in range(count):
                        frames[k] = _next_frame(reader)
                yield Window(
                    start,
                    count,
                    src_idx,
                    torch.from_numpy(frames),
                    torch.from_numpy(self.matrices[src_idx]),
                    self.has_face[src_idx],
                )
        finally:
            if reader is not None:
                reader.close()

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None

    def __enter__(self) -> SourcePlan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SourcePlanner:
    """``detect_stride`` k > 1 detects every k-th frame and interpolates the landmarks in
    between where the face moved at most ``max_motion`` px (``detect_strided``); 1 detects
    every frame."""

    def __init__(
        self,
        detector: FaceDetector,
        resolution: int,
        detect_workers: int,
        detect_stride: int = 1,
        max_motion: float = DEFAULT_MAX_MOTION,
    ):
        self.detector, self.resolution, self.detect_workers = detector, resolution, detect_workers
        self.detect_stride, self.max_motion = detect_stride, max_motion

    def plan(self, ctx: JobContext, info: MediaInfo, n_out: int, template: Template | None) -> SourcePlan:
        """From the cached template when the job has one, else by detection."""
        if template is not None:
            return self._from_template(ctx, info, n_out, template)
        return self._detect(ctx, info, n_out)

    def _detect(self, ctx: JobContext, info: MediaInfo, n_out: int) -> SourcePlan:
        """One streaming pass: detect faces in every source frame the output shows, in
        order, and compute the smoothed matrices."""
        estimate = max(1, round(info.duration * FPS))
        mode = ctx.params.sync_mode
        reads = frames_to_read(mode, n_out)  # the frames the output can show (None: all)
        keep_frames = keeps_frame_store(mode, n_out, estimate)  # the loop needs random access to frames
        store = _new_store(ctx, info) if keep_frames else None
        aligner = FaceAligner(self.resolution)
        matrices: list[np.ndarray | None] = []
        boxes: list[tuple[float, ...]] = []
        try:
            # Decoding stops at the video limit, whatever the container claimed (VIDEO_TOO_LONG).
            max_frames = ctx.limits.max_video_frames(FPS)
            with FrameReader(ctx.video_path, info.width, info.height, max_frames=max_frames) as reader:
                frames = itertools.islice(reader, reads)  # frames past the output's length are never shown
                detected = detect_strided(
                    self.detector, frames, self.detect_workers, self.detect_stride, self.max_motion
                )
                for frame, face in detected:
                    if store is not None:
                        store.append(frame)
                    matrices.append(aligner.matrix(face.points) if face is not None else None)
                    boxes.append(tuple(face.box) if face is not None else (np.nan,) * 4)
                    if len(matrices) % 8 == 0:
                        ctx.report(Stage.DETECT, len(matrices), min(estimate, reads or estimate))
                        ctx.check_cancelled()
                complete = reads is None or len(matrices) < reads  # the stream ended first: this is every frame
                errors = reader.errors
            if not matrices:
                raise MediaError(
                    "INVALID_VIDEO", f"no decodable video frames ({errors.strip()[:200] or 'empty stream'})"
                )
            if all(m is None for m in matrices):
                raise no_face_error()
            if store is None and matrices and not plan_length(mode, n_out, len(matrices)).sequential:
                # the probe under-estimated: decode again into a store
                store = _store_frames(ctx, info, len(matrices))
        except BaseException:
            if store is not None:
                store.close()
            raise
        has_face = np.array([m is not None for m in matrices])
        raw = np.stack([m if m is not None else np.full((2, 3), np.nan, np.float32) for m in matrices])
        ctx.report(Stage.DETECT, len(matrices), len(matrices))
        return SourcePlan(
            info,
            _fill_missing(raw, has_face),
            has_face,
            store,
            raw,
            np.array(boxes, np.float32).reshape(-1, 4),
            complete,
        )

    def _from_template(self, ctx: JobContext, info: MediaInfo, n_out: int, template: Template) -> SourcePlan:
        """The plan the detection pass would give: the same frames (the first ``n_out``, or
        the whole video when it loops)."""
        mode = ctx.params.sync_mode
        n_src = min(template.count, frames_to_read(mode, n_out) or template.count)
        has_face = template.has_face[:n_src].copy()
        if not has_face.any():
            raise no_face_error()
        raw = template.matrices[:n_src].copy()
        store = _store_frames(ctx, info, n_src) if not plan_length(mode, n_out, n_src).sequential else None
        ctx.report(Stage.DETECT, n_src, n_src)
        boxes = template.boxes[:n_src].copy()
        return SourcePlan(info, _fill_missing(raw, has_face), has_face, store, raw, boxes, template.complete)


def _new_store(ctx: JobContext, info: MediaInfo) -> FrameStore:
    # The whole disk limit is the store's share: it is by far the largest of the job's files.
    return FrameStore(ctx.work / "frames.png-store", info.height, info.width, ctx.limits.max_job_disk_bytes)


def _store_frames(ctx: JobContext, info: MediaInfo, count: int) -> FrameStore:
    store = _new_store(ctx, info)
    try:
        with FrameReader(ctx.video_path, info.width, info.height) as reader:
            for frame in itertools.islice(reader, count):
                store.append(frame)
    except BaseException:
        store.close()
        raise
    return store


def _next_frame(reader: FrameReader | None) -> np.ndarray:
    assert reader is not None
    frame = reader.read()
    if frame is None:
        raise MediaError("INVALID_VIDEO", "the video ended early on the second read")
    return frame


def _fill_missing(matrices: np.ndarray, has_face: np.ndarray) -> np.ndarray:
    """Give frames without a face the nearest detected frame's crop (for the UNet's input
    only: those frames are not pasted back); the earlier one on a tie."""
    valid = np.flatnonzero(has_face)
    out = np.empty((len(has_face), 2, 3), dtype=np.float32)
    for i in range(len(has_face)):
        out[i] = matrices[i] if has_face[i] else matrices[min(valid, key=lambda v: abs(v - i))]
    return out
