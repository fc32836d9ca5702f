"""Which face a job animates (the ``face`` parameter), parsed and checked before a job is
queued. No numpy, no torch: a web schema can import it.

- ``largest``: in each shot, the largest face track (summed box area: size and time on screen);
- ``track:<id>``: one track of ``latentsync faces`` / ``POST /faces`` on the same file;
- ``point:<x>,<y>@<seconds>``: the track whose box holds pixel (x, y) at that time;
- ``speaker``: in each shot, the track whose mouth moves with the video's own audio.

Every problem is a :class:`FaceSelectionError` with a stable code:
``INVALID_FACE`` (not one of the forms above), ``UNKNOWN_TRACK`` (no such track id),
``POINT_OUTSIDE_FRAME`` (the point or its time is outside the video), ``NO_FACE_AT_POINT``
(no track holds the point at that time).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from latentsync_core.common.errors import CodedError

Kind = Literal["largest", "track", "point", "speaker"]
FACE_FORMS = "largest, speaker, track:<id> or point:<x>,<y>@<seconds>"
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
_TRACK = re.compile(r"track:(\d{1,9})")
_POINT = re.compile(rf"point:({_NUMBER}),({_NUMBER})@({_NUMBER})")


class FaceSelectionError(CodedError, ValueError):
    """A ``face`` value that cannot be used (the caller's input)."""


@dataclass(frozen=True)
class FaceSelection:
    kind: Kind
    track_id: int | None = None  # kind "track"
    x: float | None = None  # kind "point": frame pixels (displayed size) ...
    y: float | None = None
    seconds: float | None = None  # ... at this time of the video

    def __str__(self) -> str:
        if self.kind == "track":
            return f"track:{self.track_id}"
        if self.kind == "point":
            return f"point:{self.x:g},{self.y:g}@{self.seconds:g}"
        return self.kind


def parse_face(text: str | FaceSelection) -> FaceSelection:
    """The selection ``text`` names; :class:`FaceSelectionError` ``INVALID_FACE`` otherwise."""
    if isinstance(text, FaceSelection):
        return text
    value = str(text).strip().lower()
    if value in ("largest", "speaker"):
        return FaceSelection(value)  # type: ignore[arg-type]
    if m := _TRACK.fullmatch(value):
        return FaceSelection("track", track_id=int(m.group(1)))
    if m := _POINT.fullmatch(value):
        x, y, t = (float(g) for g in m.groups())
        if all(math.isfinite(v) for v in (x, y, t)):
            return FaceSelection("point", x=x, y=y, seconds=t)
    raise FaceSelectionError("INVALID_FACE", f"face must be {FACE_FORMS} (got {str(text)[:80]!r})")


def check_point_in_video(selection: FaceSelection, width: int, height: int, duration: float) -> None:
    """``POINT_OUTSIDE_FRAME`` when a point selection lies outside a ``width`` x ``height``
    video of ``duration`` seconds (the probe's numbers: checkable before queueing)."""
    if selection.kind != "point":
        return
    x, y, t = selection.x, selection.y, selection.seconds
    assert x is not None and y is not None and t is not None
    if not (0 <= x < width and 0 <= y < height):
        raise FaceSelectionError("POINT_OUTSIDE_FRAME", f"point ({x:g}, {y:g}) is outside the {width}x{height} frame")
    if not 0 <= t < duration:
        raise FaceSelectionError("POINT_OUTSIDE_FRAME", f"time {t:g} s is outside the video (0 to {duration:.2f} s)")


def check_track_known(selection: FaceSelection, track_ids: Iterable[int]) -> None:
    """``UNKNOWN_TRACK`` when a track selection names none of ``track_ids``."""
    if selection.kind != "track":
        return
    ids = sorted(track_ids)
    if selection.track_id not in ids:
        known = ", ".join(str(i) for i in ids[:20]) or "none"
        raise FaceSelectionError("UNKNOWN_TRACK", f"no face track {selection.track_id} in this video (tracks: {known})")
