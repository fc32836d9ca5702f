"""A face selection resolved against a video's face tracks: the track each frame animates
(or none: the frame passes through unchanged), and per shot which track was used and why.

Per shot, by kind of selection:
- ``largest``: the track with the largest summed box area (size and time on screen);
  ties: the lower id. One track for the whole shot: the choice never jumps between people.
- ``track`` / ``point``: the one chosen track, in its shot; other shots pass through.
- ``speaker``: the track with the highest sync confidence against the video's own audio,
  if it reaches ``threshold``; else (no audio, no track scored, none high enough) the
  largest, and the record says why.

Frames of the chosen track where the detector missed the face pass through, as frames
without a face always have.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from latentsync_core.inference.face_selection import (
    FaceSelection,
    FaceSelectionError,
    check_point_in_video,
    check_track_known,
)
from latentsync_core.sync.speaker import SPEAKER_MIN_CONFIDENCE
from latentsync_core.vision.boxes import box_contains
from latentsync_core.vision.face_tracks import FaceTrack, FaceTracks


@dataclass(frozen=True)
class ShotChoice:
    shot: int
    start: int  # [start, end) frames
    end: int
    track: int | None  # None: every frame of the shot passes through
    reason: str  # "largest", "track", "point", "speaker", "largest (no audio)", "no face", ...
    confidence: dict[int, float] | None = None  # speaker: each scored track's confidence

    def to_json(self) -> dict:
        out: dict = {"shot": self.shot, "start_frame": self.start, "end_frame": self.end}
        out |= {"track": self.track, "reason": self.reason}
        if self.confidence is not None:
            out["confidence"] = {str(k): round(v, 3) for k, v in sorted(self.confidence.items())}
        return out


@dataclass
class FaceChoice:
    selection: str
    frame_track: np.ndarray  # (frames,) int64: the track animated in each frame, -1 for none
    shots: list[ShotChoice]

    def to_json(self) -> dict:
        """What a job result records."""
        return {"face": self.selection, "shots": [s.to_json() for s in self.shots]}


def _largest(tracks: list[FaceTrack]) -> FaceTrack | None:
    return min(tracks, key=lambda t: (-t.total_area, t.id)) if tracks else None


def point_track(selection: FaceSelection, tracks: FaceTracks) -> FaceTrack:
    """The track whose box holds the selection's point at its time (the smallest such box:
    the nearer face when boxes overlap)."""
    assert selection.x is not None and selection.y is not None and selection.seconds is not None
    check_point_in_video(selection, tracks.width, tracks.height, tracks.frames / tracks.fps)
    frame = min(int(selection.seconds * tracks.fps), tracks.frames - 1)
    under = []
    for t in tracks.tracks:
        face = t.face_at(frame)
        if face is not None and box_contains(face.box, selection.x, selection.y):
            b = face.box
            under.append(((b[2] - b[0]) * (b[3] - b[1]), t.id, t))
    if not under:
        raise FaceSelectionError(
            "NO_FACE_AT_POINT", f"no face at ({selection.x:g}, {selection.y:g}) at {selection.seconds:g} s"
        )
    return min(under, key=lambda u: (u[0], u[1]))[2]


def check_selection(selection: FaceSelection, tracks: FaceTracks) -> None:
    """Every error a selection can give against known tracks (``UNKNOWN_TRACK``,
    ``POINT_OUTSIDE_FRAME``, ``NO_FACE_AT_POINT``): for validation before queueing."""
    check_track_known(selection, tracks.ids)
    if selection.kind == "point":
        point_track(selection, tracks)


def choose_faces(
    selection: FaceSelection,
    tracks: FaceTracks,
    confidences: dict[int, float] | None = None,
    no_speaker_reason: str | None = None,
    threshold: float = SPEAKER_MIN_CONFIDENCE,
) -> FaceChoice:
    """Resolve ``selection`` (module docstring). For ``speaker``, ``confidences`` maps track
    ids to their sync confidence (``speaker.speaker_confidences``) and ``threshold`` is the
    scorer's bar (``SpeakerScorer.min_confidence``); ``no_speaker_reason`` says why there
    are no confidences (e.g. "no audio")."""
    check_selection(selection, tracks)
    fixed: FaceTrack | None = None
    if selection.kind == "track":
        fixed = tracks.get(selection.track_id)  # type: ignore[arg-type]
    elif selection.kind == "point":
        fixed = point_track(selection, tracks)
    frame_track = np.full(tracks.frames, -1, np.int64)
    shots: list[ShotChoice] = []
    for index, (start, end) in enumerate(tracks.shots):
        present = tracks.in_shot(index)
        scores = None
        if not present:
            chosen, reason = None, "no face"
        elif fixed is not None:
            chosen = fixed if fixed.shot == index else None
            reason = selection.kind if chosen is not None else f"{selection.kind} not in this shot"
        elif selection.kind == "speaker":
            chosen, reason, scores = _speaker(present, confidences, no_speaker_reason, threshold)
        else:
            chosen, reason = _largest(present), "largest"
        if chosen is not None:
            seen = chosen.first + np.flatnonzero(chosen.detected)
            frame_track[seen] = chosen.id
        shots.append(ShotChoice(index, start, end, chosen.id if chosen else None, reason, scores))
    return FaceChoice(str(selection), frame_track, shots)


def _speaker(
    present: list[FaceTrack], confidences: dict[int, float] | None, no_speaker_reason: str | None, threshold: float
) -> tuple[FaceTrack | None, str, dict[int, float] | None]:
    if confidences is None:
        return _largest(present), f"largest ({no_speaker_reason or 'no sync scores'})", None
    scores = {t.id: confidences[t.id] for t in present if t.id in confidences}
    if not scores:
        return _largest(present), "largest (no track long enough to score)", scores
    best = min(scores, key=lambda i: (-scores[i], i))
    if scores[best] < threshold:
        return _largest(present), f"largest (no track above confidence {threshold:g})", scores
    return next(t for t in present if t.id == best), "speaker", scores
