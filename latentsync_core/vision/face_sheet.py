"""Pictures of face tracks: a JPEG thumbnail per track (its largest detection, with some
margin, square) and a contact sheet (every thumbnail with its id, shot and time) as PNG."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import cv2
import numpy as np

from latentsync_core.media.constants import FPS
from latentsync_core.media.video_io import FrameReader
from latentsync_core.vision.face_tracks import FaceTrack, FaceTracks

THUMB_SIZE = 128
MARGIN = 0.25  # of the box size, on each side
LABEL_HEIGHT = 36


def thumbnail(frame_rgb: np.ndarray, box: tuple[float, ...], size: int = THUMB_SIZE, quality: int = 90) -> bytes:
    """JPEG bytes of the square around ``box`` (plus ``MARGIN``), ``size`` x ``size``; the
    part outside the frame is black."""
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1) * (1 + 2 * MARGIN)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    scale = size / side
    # a similarity transform: the square's corner to (0, 0), its side to `size`
    m = np.array([[scale, 0, -(cx - side / 2) * scale], [0, scale, -(cy - side / 2) * scale]])
    square = cv2.warpAffine(frame_rgb, m, (size, size), flags=cv2.INTER_AREA, borderValue=(0, 0, 0))
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(square, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return jpeg.tobytes()


def add_thumbnails(video_path: str | Path, tracks: FaceTracks, size: int = THUMB_SIZE) -> FaceTracks:
    """Give every track its thumbnail (one more decoding pass, up to the last track's best
    frame); returns ``tracks``."""
    wanted: dict[int, list[FaceTrack]] = {}
    for t in tracks.tracks:
        wanted.setdefault(t.best_frame, []).append(t)
    if not wanted:
        return tracks
    with FrameReader(video_path, tracks.width, tracks.height, fps=FPS) as reader:
        for frame_no, frame in enumerate(itertools.islice(reader, max(wanted) + 1)):
            for t in wanted.get(frame_no, []):
                face = t.face_at(frame_no)
                assert face is not None
                t.thumbnail = thumbnail(frame, face.box, size)
    return tracks


def write_thumbnails(tracks: FaceTracks, folder: str | Path) -> dict[int, Path]:
    """``track_<id>.jpg`` per track with a thumbnail; id -> path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for t in tracks.tracks:
        if t.thumbnail is not None:
            out[t.id] = folder / f"track_{t.id}.jpg"
            out[t.id].write_bytes(t.thumbnail)
    return out


def contact_sheet(tracks: FaceTracks, path: str | Path, columns: int = 6, size: int = THUMB_SIZE) -> Path:
    """A PNG of every track's thumbnail, labelled ``#id shot s`` and its time span."""
    n = max(1, len(tracks.tracks))
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    cell_h = size + LABEL_HEIGHT
    sheet = np.full((rows * cell_h, cols * size, 3), 255, np.uint8)
    for k, t in enumerate(tracks.tracks):
        r, c = divmod(k, cols)
        y, x = r * cell_h, c * size
        if t.thumbnail is not None:
            image = cv2.imdecode(np.frombuffer(t.thumbnail, np.uint8), cv2.IMREAD_COLOR)
            sheet[y : y + size, x : x + size] = cv2.resize(image, (size, size))
        for line, text in enumerate(
            (f"#{t.id} shot {t.shot}", f"{t.first / tracks.fps:.1f}-{(t.last + 1) / tracks.fps:.1f} s")
        ):
            org = (x + 4, y + size + 15 + 16 * line)
            cv2.putText(sheet, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), sheet):  # the sheet is BGR as cv2 writes it: labels are black either way
        raise RuntimeError(f"cannot write {path}")
    return path
