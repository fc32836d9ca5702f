"""Finding, tracking and cropping the speaker's face for SyncNet scoring, as upstream's
evaluation does (``eval/syncnet_detect.py``, from syncnet_python's ``run_pipeline.py``).

Two passes over the video (25 fps, as :class:`FrameReader` resamples it), so that only the
224 px crops are ever held, never the decoded video:

1. **Detect** the face in every frame with our detector (one face per frame: the largest
   plausible one) and keep only its box.
2. **Track** as upstream's ``track_face``: a track starts at a detection and takes each later
   detection whose box overlaps the track's last one by IoU > 0.5, provided it comes at
   most 25 frames after it; detections that do not fit start further tracks. Frames a
   track skips get boxes interpolated linearly between their neighbours, so a track is a
   run of consecutive frames. **The longest track is scored** (ties: more detections,
   then the earlier one); under 6 frames it is too short. Upstream scores every track of
   more than 50 detections and averages them; scoring one track ties the report's offset
   and per-second values to one stretch of video under one audio alignment.
3. **Crop** as upstream's ``crop_video``: box centre ``x, y`` and half size
   ``s = max(w, h) / 2`` each smoothed with a 13-frame running median; the frame is padded
   by ``int(s * 1.8)`` pixels of grey 110; the crop spans ``y - s .. y + 1.8 s`` and
   ``x - 1.4 s .. x + 1.4 s`` (a square of 2.8 s, the face in its upper part) and is resized to
   224 x 224 (bilinear) in BGR, the order the network was trained on. This second pass
   decodes the video again, up to the track's last frame. The crops are all that is kept:
   147 KiB a frame, 3.7 MiB a second of video.

Differences from upstream, all deliberate: no shot detection (PySceneDetect); a cut that
keeps a face at nearly the same place joins the two shots in one track, a cut that moves
it ends the track through the IoU rule. No 100 px minimum face size: our detector's own
plausibility filter decides. The running median takes the frames that exist at the ends of
a track (scipy's ``medfilt`` pads with zeros, which shrinks and shifts the box near both
ends and would give an empty box to a track under 7 frames).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from latentsync_core.common.errors import CodedError, MediaError
from latentsync_core.media.constants import FPS
from latentsync_core.media.info import MediaInfo
from latentsync_core.media.probe import probe_video
from latentsync_core.media.video_io import FrameReader
from latentsync_core.vision.boxes import box_iou
from latentsync_core.vision.face_detection import FaceDetector, default_detect_workers, detect_in_order

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in frame pixels

MIN_IOU = 0.5  # upstream's iouThres: consecutive detections of one face overlap more than this
MAX_GAP = 25  # upstream's num_failed_det: frames a track may go without a matching detection
SMOOTH_FRAMES = 13  # upstream's median filter length for the box centre and size
CROP_SCALE = 0.4  # upstream's crop_scale: padding around the face, in units of the box size
PAD_VALUE = 110  # grey of the border where the crop leaves the frame
CROP_SIZE = 224
MIN_TRACK_FRAMES = 6  # one 5-frame clip and the frame after it: the least score_frames takes


@dataclass(frozen=True)
class Track:
    """A face followed over the consecutive frames ``first .. first + len(boxes) - 1``."""

    first: int
    boxes: np.ndarray  # (frames, 4) float64 x1, y1, x2, y2; interpolated where detection skipped
    detections: int  # frames with a detection of their own

    @property
    def length(self) -> int:
        return len(self.boxes)

    @property
    def last(self) -> int:
        return self.first + self.length - 1


@dataclass
class FaceCrops:
    """What :func:`track_and_crop` gives: the scored track's crops and where they come from."""

    crops: np.ndarray  # (frames, 224, 224, 3) uint8 BGR, frames first .. first + len - 1 of the 25 fps video
    first_frame: int
    frames_decoded: int  # frames of the whole video at 25 fps
    frames_with_face: int  # frames where the detector found a face
    track: Track


def build_tracks(boxes: Sequence[Box | None], min_iou: float = MIN_IOU, max_gap: int = MAX_GAP) -> list[Track]:
    """Upstream's greedy tracking of per-frame detections (``None``: no face in that frame).

    Each pass starts a track at the earliest detection not yet taken and walks forward,
    taking every detection within ``max_gap`` frames of the track's last one whose IoU with
    it exceeds ``min_iou``; what it skips is left for the next pass. Tracks come out in the
    order of their first frame.
    """
    remaining = [(i, np.asarray(b, dtype=np.float64)) for i, b in enumerate(boxes) if b is not None]
    tracks: list[Track] = []
    while remaining:
        taken = [remaining[0]]
        left = []
        for k, (frame, box) in enumerate(remaining[1:], start=1):
            last_frame, last_box = taken[-1]
            if frame - last_frame > max_gap:  # the gap only grows from here: the track is over
                left.extend(remaining[k:])
                break
            if box_iou(box, last_box) > min_iou:
                taken.append((frame, box))
            else:
                left.append((frame, box))
        frames = np.array([f for f, _ in taken])
        dets = np.stack([b for _, b in taken])
        span = np.arange(frames[0], frames[-1] + 1)
        interpolated = np.stack([np.interp(span, frames, dets[:, c]) for c in range(4)], axis=1)
        tracks.append(Track(first=int(frames[0]), boxes=interpolated, detections=len(taken)))
        remaining = left
    tracks.sort(key=lambda t: t.first)
    return tracks


def longest_track(tracks: Sequence[Track]) -> Track | None:
    """The track with the most frames; ties go to more detections, then the earlier track."""
    if not tracks:
        return None
    return min(tracks, key=lambda t: (-t.length, -t.detections, t.first))


def running_median(values: np.ndarray, size: int = SMOOTH_FRAMES) -> np.ndarray:
    """Median over a centred window of ``size`` values; near the ends, of those that exist."""
    half = size // 2
    padded = np.pad(np.asarray(values, dtype=np.float64), half, constant_values=np.nan)
    return np.nanmedian(np.lib.stride_tricks.sliding_window_view(padded, size), axis=1)


def smooth_track(track: Track, size: int = SMOOTH_FRAMES) -> np.ndarray:
    """(frames, 3): smoothed centre x, centre y and half size ``max(w, h) / 2`` per frame."""
    b = track.boxes
    half_size = np.maximum(b[:, 3] - b[:, 1], b[:, 2] - b[:, 0]) / 2
    centre_x = (b[:, 0] + b[:, 2]) / 2
    centre_y = (b[:, 1] + b[:, 3]) / 2
    return np.stack([running_median(v, size) for v in (centre_x, centre_y, half_size)], axis=1)


def crop_face(frame_rgb: np.ndarray, cx: float, cy: float, s: float, crop_scale: float = CROP_SCALE) -> np.ndarray:
    """Upstream's crop of one frame around a smoothed box, as a 224 x 224 BGR uint8 image.

    Same pixels as padding the whole frame with ``int(s * (1 + 2 * crop_scale))`` pixels of
    grey 110 and slicing it as upstream does, without building the padded frame.
    """
    h, w = frame_rgb.shape[:2]
    pad = int(s * (1 + 2 * crop_scale))
    my, mx = cy + pad, cx + pad  # the centre in the padded frame
    # the slice bounds upstream takes in the padded frame (numpy clips them at its far edges)
    y0, y1 = int(my - s), int(my + s * (1 + 2 * crop_scale))
    x0, x1 = int(mx - s * (1 + crop_scale)), int(mx + s * (1 + crop_scale))
    y0, x0 = max(y0, 0), max(x0, 0)
    y1, x1 = min(y1, h + 2 * pad), min(x1, w + 2 * pad)
    if y1 <= y0 or x1 <= x0:
        raise ValueError(f"empty face crop (centre {cx:.1f}, {cy:.1f}, half size {s:.1f}) in a {w}x{h} frame")
    out = np.full((y1 - y0, x1 - x0, 3), PAD_VALUE, np.uint8)
    # the part of the slice that lies on the frame, in frame coordinates
    fy0, fy1 = max(y0 - pad, 0), min(y1 - pad, h)
    fx0, fx1 = max(x0 - pad, 0), min(x1 - pad, w)
    if fy1 > fy0 and fx1 > fx0:
        oy, ox = fy0 - (y0 - pad), fx0 - (x0 - pad)
        out[oy : oy + fy1 - fy0, ox : ox + fx1 - fx0] = frame_rgb[fy0:fy1, fx0:fx1]
    resized = cv2.resize(out, (CROP_SIZE, CROP_SIZE))  # bilinear, as upstream's cv2.resize
    return cv2.cvtColor(resized, cv2.COLOR_RGB2BGR)


def detect_boxes(video_path: str | Path, info: MediaInfo, detector: FaceDetector, workers: int = 1) -> list[Box | None]:
    """Pass 1: the face box of every 25 fps frame (None where no face), keeping nothing else."""
    boxes: list[Box | None] = []
    with FrameReader(video_path, info.width, info.height, fps=FPS) as reader:
        for _, face in detect_in_order(detector, reader, workers):
            boxes.append(face.box if face is not None else None)
        errors = reader.errors
    if not boxes:
        raise MediaError("INVALID_VIDEO", f"no decodable video frames ({errors.strip()[:200] or 'empty stream'})")
    return boxes


def crop_track(video_path: str | Path, info: MediaInfo, track: Track) -> np.ndarray:
    """Pass 2: decode up to the track's last frame and crop each of its frames."""
    smooth = smooth_track(track)
    crops = np.empty((track.length, CROP_SIZE, CROP_SIZE, 3), np.uint8)
    count = 0
    with FrameReader(video_path, info.width, info.height, fps=FPS) as reader:
        for frame in itertools.islice(reader, track.first, track.last + 1):
            cx, cy, s = smooth[count]
            crops[count] = crop_face(frame, cx, cy, s)
            count += 1
    return crops[:count]  # the same decode as pass 1; fewer frames only if the file changed meanwhile


def track_and_crop(
    video_path: str | Path,
    detector: FaceDetector,
    info: MediaInfo | None = None,
    workers: int | None = None,
) -> FaceCrops:
    """Detect, track and crop the video's main face (the module docstring says how).

    Raises :class:`CodedError` ``TOO_SHORT`` (under 6 frames in the video or in its longest
    face track), ``NO_FACE`` (no face in any frame), and the media codes of
    :func:`probe_video` and ``INVALID_VIDEO`` (no decodable frame).
    """
    info = info or probe_video(video_path)
    workers = default_detect_workers() if workers is None else workers
    boxes = detect_boxes(video_path, info, detector, workers)
    found = sum(b is not None for b in boxes)
    if len(boxes) < MIN_TRACK_FRAMES:
        raise CodedError(
            "TOO_SHORT",
            f"the video has {len(boxes)} frames at {FPS} fps; sync scoring needs at least {MIN_TRACK_FRAMES}",
        )
    if found == 0:
        raise CodedError("NO_FACE", f"no face was found in any of the {len(boxes)} frames of the video")
    track = longest_track(build_tracks(boxes))
    assert track is not None
    if track.length < MIN_TRACK_FRAMES:
        raise CodedError(
            "TOO_SHORT",
            f"the longest face track lasts {track.length} frames (faces in {found} of {len(boxes)} frames); "
            f"sync scoring needs at least {MIN_TRACK_FRAMES} consecutive frames",
        )
    crops = crop_track(video_path, info, track)
    return FaceCrops(
        crops=crops, first_frame=track.first, frames_decoded=len(boxes), frames_with_face=found, track=track
    )
