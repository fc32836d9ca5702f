"""Stage 5, ``align``: faces aligned to ``resolution`` px exactly as inference aligns them.

The same detector back-end (``make_face_detector``), the same smoothed similarity
transform (``FaceAligner.matrix``), the same warp (``FaceAligner.warp_faces``) and the same
LANCZOS4 resize to ``r x r`` as ``inference.conditioning.with_aligned_faces``, so the model
trains on the crops it will be given.

A segment is dropped when no face is found, when more frames than allowed lack one, when
the face is small in the source, or when the face box jumps from one frame to the next
(the detector has switched to another person). Frames without a face, when allowed, reuse
the nearest earlier crop transform.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from latentsync_core.data.config import PreprocessConfig
from latentsync_core.data.items import Outcome, Task
from latentsync_core.data.segment_io import SegmentReader, read_wav_slice, write_lossless
from latentsync_core.media.constants import FPS, SAMPLES_PER_FRAME
from latentsync_core.vision.alignment import FaceAligner
from latentsync_core.vision.face_detection import Face, detect_in_order

if TYPE_CHECKING:
    from latentsync_core.data.stages import DeviceModels

WARP_BATCH = 16


@dataclass
class _Track:
    """Running face statistics of one segment."""

    widths: list[float]
    missing: int = 0
    max_jump: float = 0.0
    max_scale_jump: float = 1.0
    last: Face | None = None

    def add(self, face: Face | None) -> None:
        if face is None:
            self.missing += 1
            return
        x1, y1, x2, y2 = face.box
        width = x2 - x1
        if self.last is not None:
            lx1, ly1, lx2, ly2 = self.last.box
            last_w = lx2 - lx1
            shift = math.hypot((x1 + x2 - lx1 - lx2) / 2, (y1 + y2 - ly1 - ly2) / 2)
            self.max_jump = max(self.max_jump, shift / max(width, last_w, 1.0))
            self.max_scale_jump = max(self.max_scale_jump, max(width, last_w) / max(min(width, last_w), 1.0))
        self.widths.append(width)
        self.last = face

    def measurements(self) -> dict[str, Any]:
        return {
            "face_size": float(np.median(self.widths)) if self.widths else 0.0,
            "face_size_min": float(min(self.widths)) if self.widths else 0.0,
            "missing_frames": self.missing,
            "max_face_jump": round(self.max_jump, 4),
            "max_face_scale_jump": round(self.max_scale_jump, 4),
        }


def align_segment(task: Task, cfg: PreprocessConfig, detector: Any, device: str, threads: int) -> Outcome:
    """One segment; writes ``args['out']`` (lossless, r x r, with its audio)."""
    a = task.args
    start, count, r = int(a["start"]), int(a["frames"]), cfg.resolution
    allowed_missing = math.floor(cfg.max_missing_face_ratio * count)
    aligner = FaceAligner(r, device=device)
    track = _Track(widths=[])
    crops: list[np.ndarray] = []
    pending: list[tuple[np.ndarray, np.ndarray | None]] = []  # (frame, matrix or None before the first face)
    last_matrix: np.ndarray | None = None
    reason = ""

    def flush(final: bool = False) -> None:
        # Warp a batch once every frame in it has a transform.
        nonlocal pending
        if last_matrix is None or (not final and len(pending) < WARP_BATCH):
            return
        frames = torch.from_numpy(np.stack([f for f, _ in pending]))
        mats = torch.from_numpy(np.stack([m if m is not None else last_matrix for _, m in pending]))
        crops.extend(aligner.model_faces(frames, mats))
        pending = []

    reader = SegmentReader(a["video"], int(a["width"]), int(a["height"]), start, count)
    with reader:
        for frame, face in detect_in_order(detector, reader, threads):
            track.add(face)
            if face is not None:
                matrix = aligner.matrix(face.points)
                if last_matrix is None:  # frames held before the first face take its transform
                    pending = [(f, matrix) for f, _ in pending]
                last_matrix = matrix
            pending.append((frame, last_matrix))
            if track.missing > allowed_missing:
                reason = "no_face" if not track.widths else "face_missing"
                break
            if track.max_jump > cfg.max_face_jump or track.max_scale_jump > cfg.max_face_scale_jump:
                reason = "face_jump"
                break
            flush()
        decoded = track.missing + len(track.widths)
        errors = reader.errors.strip()
    found = track.measurements()
    found["frames_examined"] = decoded
    if reason:
        return Outcome.reject(task, reason, **found)
    if decoded < count:
        return Outcome.reject(task, "short_read", expected=count, error=errors[-300:], **found)
    if found["face_size"] < cfg.min_face_size:
        return Outcome.reject(task, "face_too_small", **found)
    flush(final=True)
    pcm = read_wav_slice(a["audio"], start * SAMPLES_PER_FRAME, count * SAMPLES_PER_FRAME)
    pcm = np.pad(pcm, (0, count * SAMPLES_PER_FRAME - len(pcm)))
    write_lossless(Path(a["out"]), crops, r, pcm)
    outcome = Outcome.keep(task, **found)
    outcome.footage_s = count / FPS
    return outcome


def run(task: Task, cfg: PreprocessConfig, models: DeviceModels | None) -> Outcome:
    assert models is not None
    return align_segment(task, cfg, models.detector, models.device, models.threads)
