"""A new job's parameters as its record keeps them, and the checks of the dubbing ones
(``face``, ``sync_mode``, ``sampler``, ``quality``) before the job is queued, with the
library's validators and codes (400): ``INVALID_FACE``, ``INVALID_SYNC_MODE``,
``INVALID_SAMPLER``, ``INVALID_QUALITY`` at once; ``POINT_OUTSIDE_FRAME`` against the
video's probe; ``UNKNOWN_TRACK`` / ``NO_FACE_AT_POINT`` against the tracks a face scan
(``POST /faces``) found in the same file."""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from latentsync_core.common.errors import CodedError
from latentsync_core.inference.face_choice import check_selection
from latentsync_core.inference.face_selection import check_point_in_video, parse_face
from latentsync_core.inference.params import LipSyncParams, apply_quality
from latentsync_core.media.info import MediaInfo
from server.api.errors import APIError
from server.api.schemas import JobParams
from server.faces.known import KnownTracks
from server.faces.record import file_sha256

DUBBING = ("sampler", "sync_mode", "face")
_LIBRARY_DEFAULTS = asdict(LipSyncParams())


def job_params(params: JobParams, defaults: dict[str, Any]) -> dict[str, Any]:
    """The job's parameters: the request's, over its ``quality`` preset, over the service
    defaults. The record keeps the four classic ones always (as before), a dubbing one when
    the request or its preset set it, and the preset's name (``quality``; ``run_job`` leaves
    it out of the library's parameters: its effect is in the others)."""
    given = {name: getattr(params, name) for name in (*defaults, *DUBBING)}
    try:
        values = apply_quality(params.quality, given, defaults)
    except CodedError as exc:
        raise APIError(400, exc.code, exc.message) from exc
    record = {name: values[name] for name in defaults}
    for name in DUBBING:
        if given[name] is not None or values[name] != _LIBRARY_DEFAULTS[name]:
            record[name] = values[name]
    if record.get("face") is not None:
        record["face"] = str(parse_face(record["face"]))  # one spelling: "Track:01" is "track:1"
    if params.quality is not None:
        record["quality"] = params.quality
    return record


def check_face(face: str | None, video: Path, info: MediaInfo, known: KnownTracks) -> None:
    """Blocking (hashes the video, reads the scan's tracks): call it off the event loop.

    A point must lie in the frame and the video's time. A track id needs a finished scan of
    these exact bytes (``FACES_NOT_SCANNED`` otherwise: ids mean nothing without one) and
    must be one of its tracks; a point is checked against a scan when one is known (else
    the job finds the face under it when it runs)."""
    if face is None:
        return
    selection = parse_face(face)
    if selection.kind not in ("track", "point"):
        return
    try:
        check_point_in_video(selection, info.width, info.height, info.duration or math.inf)
        tracks = known.get(file_sha256(video))
        if tracks is None and selection.kind == "track":
            raise APIError(
                400,
                "FACES_NOT_SCANNED",
                "face=track:<id> needs the track ids of this exact file: POST /faces with it first "
                "(a scan is kept for the result retention time)",
            )
        if tracks is not None:
            check_selection(selection, tracks)
    except CodedError as exc:
        raise APIError(400, exc.code, exc.message) from exc
