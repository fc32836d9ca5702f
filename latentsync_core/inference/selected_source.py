"""The source plan of a job with a face selection (``face=...``): the same plan as the
plain detection pass (``source.py``) gives, but each frame is aligned on the chosen track's
face (``face_choice.py``) instead of the frame's largest face.

The whole video is tracked (track ids and shots are then those ``latentsync faces`` lists,
and a point's time may lie past the speech), in one decoding pass that also fills the frame
store when the output needs random access. The translation smoothing of the alignment
starts again whenever the chosen track changes, so one person's motion never leaks into
another's crop. Frames without the chosen face pass through unchanged.
"""

from __future__ import annotations

import logging

import numpy as np

from latentsync_core.common.errors import MediaError
from latentsync_core.inference.context import JobContext
from latentsync_core.inference.face_choice import FaceChoice, choose_faces
from latentsync_core.inference.face_selection import FaceSelection
from latentsync_core.inference.length_modes import frames_to_read, keeps_frame_store, plan_length
from latentsync_core.inference.source import SourcePlan, _fill_missing, _new_store, _store_frames, no_face_error
from latentsync_core.inference.stages import Stage
from latentsync_core.media.audio_io import load_audio, to_int16
from latentsync_core.media.constants import FPS
from latentsync_core.media.info import MediaInfo
from latentsync_core.sync.speaker import SpeakerScorer, speaker_confidences
from latentsync_core.vision.alignment import FaceAligner
from latentsync_core.vision.face_detection import FaceDetector
from latentsync_core.vision.face_tracks import FaceTracks, track_faces

log = logging.getLogger(__name__)


def plan_selected_source(
    ctx: JobContext,
    info: MediaInfo,
    n_out: int,
    selection: FaceSelection,
    detector: FaceDetector,
    resolution: int,
    workers: int,
    scorer: SpeakerScorer | None = None,
) -> SourcePlan:
    """Track every face, resolve ``selection`` and align each frame on the chosen face.
    ``scorer`` judges ``speaker`` (without one, speaker falls back to the largest track).
    Raises the selection's coded errors (``UNKNOWN_TRACK``, ``NO_FACE_AT_POINT``...),
    ``NO_FACE`` when no frame gets a face, and the decoding errors of the plain pass."""
    mode = ctx.params.sync_mode
    estimate = max(1, round(info.duration * FPS))
    store = _new_store(ctx, info) if keeps_frame_store(mode, n_out, estimate) else None

    def progress(done: int, total: int) -> None:
        ctx.report(Stage.DETECT, done, total)
        ctx.check_cancelled()

    try:
        tracks = track_faces(
            ctx.video_path,
            detector,
            info,
            workers,
            max_frames=ctx.limits.max_video_frames(FPS),
            progress=progress,
            on_frame=store.append if store is not None else None,
        )
        choice = _choose(ctx, info, selection, tracks, scorer)
        has_face = choice.frame_track >= 0
        if not has_face.any():
            raise no_face_error()
        if store is None and not plan_length(mode, n_out, tracks.frames).sequential:
            store = _store_frames(ctx, info, tracks.frames)  # the probe under-estimated the length
    except BaseException:
        if store is not None:
            store.close()
        raise
    raw, boxes = _matrices(choice, tracks, resolution)
    filled = _fill_missing(raw, has_face)
    # The frames the job can show, as the plain plan keeps them: a template cache entry
    # holds only frames whose moments the job computed. Kept whole when the chosen face
    # only appears later (a template of those frames would have no face at all).
    n = min(tracks.frames, frames_to_read(mode, n_out) or tracks.frames)
    if not has_face[:n].any():
        n = tracks.frames
    plan = SourcePlan(info, filled[:n], has_face[:n], store, raw[:n], boxes[:n], complete=n == tracks.frames)
    plan.face_choice = choice.to_json()
    return plan


def _choose(
    ctx: JobContext, info: MediaInfo, selection: FaceSelection, tracks: FaceTracks, scorer: SpeakerScorer | None
) -> FaceChoice:
    if selection.kind != "speaker":
        return choose_faces(selection, tracks)
    if scorer is None:
        return choose_faces(selection, tracks, None, "no sync scorer loaded")
    if not info.has_audio:
        return choose_faces(selection, tracks, None, "the video has no audio")
    try:
        pcm = to_int16(load_audio(ctx.video_path, max_seconds=ctx.limits.max_audio_seconds()))
    except MediaError as exc:  # an unreadable audio track: the video's frames are still usable
        log.warning("speaker: the video's audio cannot be read (%s): largest face instead", exc.code)
        return choose_faces(selection, tracks, None, f"the video's audio cannot be read: {exc.code}")
    confidences = speaker_confidences(ctx.video_path, tracks, pcm, scorer, should_stop=ctx.check_cancelled)
    return choose_faces(selection, tracks, confidences, threshold=scorer.min_confidence)


def _matrices(choice: FaceChoice, tracks: FaceTracks, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """(F, 2, 3) alignment matrices (NaN where no face) and (F, 4) boxes of the chosen faces."""
    raw = np.full((tracks.frames, 2, 3), np.nan, np.float32)
    boxes = np.full((tracks.frames, 4), np.nan, np.float32)
    by_id = {t.id: t for t in tracks.tracks}
    aligner, current = FaceAligner(resolution), -1
    for frame, track_id in enumerate(choice.frame_track):
        if track_id < 0:
            continue
        if track_id != current:  # another person: the smoothing starts again
            aligner, current = FaceAligner(resolution), int(track_id)
        face = by_id[int(track_id)].face_at(frame)
        assert face is not None
        raw[frame] = aligner.matrix(face.points)
        boxes[frame] = face.box
    return raw, boxes
