"""Who is speaking: the sync confidence of each face track against the video's own audio.

Each track is cropped as sync scoring crops (:mod:`latentsync_core.sync.track`: smoothed
box, padded 224 px square, BGR; frames the detector missed take boxes interpolated between
their neighbours) over at most ``max_frames`` of its first frames (10 s: enough to tell a
speaker from a listener, and it bounds memory to ~37 MB of crops per track, freed as soon
as the track is scored), in one decoding pass for all tracks. The crops and the audio under
them go to a :class:`SpeakerScorer`: SyncNetV2's LSE-C in the service
(:class:`SyncNetSpeakerScorer`), anything with the same signature in a test.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from latentsync_core.media.constants import FPS, SAMPLES_PER_FRAME
from latentsync_core.media.video_io import FrameReader
from latentsync_core.sync.score import MIN_FRAMES, score_frames
from latentsync_core.sync.track import Track, crop_face, smooth_track
from latentsync_core.vision.face_tracks import FaceTrack, FaceTracks

MAX_SPEAKER_FRAMES = 250  # 10 s of each track are scored
MIN_SPEAKER_FRAMES = 12  # shorter tracks (or audio under them) are not scored
SPEAKER_MIN_CONFIDENCE = 3.0  # SyncNetV2 LSE-C: the data pipeline's bar for a clip in sync


class SpeakerScorer(Protocol):
    # The confidence from which a track counts as speaking: each scorer has its own scale.
    min_confidence: float

    def confidence(self, crops_bgr: np.ndarray, pcm: np.ndarray) -> float:
        """How well the mouth in 25 fps face crops (N, 224, 224, 3) uint8 BGR moves with int16
        16 kHz speech ``pcm`` that starts with the first crop (higher: more in sync)."""
        ...


class SyncNetSpeakerScorer:
    """SyncNetV2's confidence (LSE-C over +-``vshift`` frames), as sync scoring measures it."""

    def __init__(self, syncnet: torch.nn.Module, vshift: int = 15, min_confidence: float = SPEAKER_MIN_CONFIDENCE):
        self.syncnet, self.vshift, self.min_confidence = syncnet, vshift, min_confidence

    def confidence(self, crops_bgr: np.ndarray, pcm: np.ndarray) -> float:
        return float(score_frames(self.syncnet, crops_bgr, pcm, self.vshift).lse_c)


def _filled(track: FaceTrack, count: int) -> Track:
    """The track's first ``count`` boxes, missed frames interpolated (the cropper needs a box per frame)."""
    boxes = track.boxes[:count]
    seen = np.flatnonzero(~np.isnan(boxes[:, 0]))
    span = np.arange(count)
    filled = np.stack([np.interp(span, seen, boxes[seen, c]) for c in range(4)], axis=1)
    return Track(first=track.first, boxes=filled, detections=len(seen))


def speaker_confidences(
    video_path: str | Path,
    tracks: FaceTracks,
    pcm: np.ndarray,
    scorer: SpeakerScorer,
    max_frames: int = MAX_SPEAKER_FRAMES,
    should_stop: Callable[[], None] | None = None,
) -> dict[int, float]:
    """Confidence per track id against ``pcm`` (int16 16 kHz, starting with frame 0). Tracks
    with fewer than ``MIN_SPEAKER_FRAMES`` frames under the audio are left out.
    ``should_stop()`` is called between frames (it may raise to stop)."""
    audio_frames = len(pcm) // SAMPLES_PER_FRAME
    spans: dict[int, tuple[FaceTrack, int]] = {}  # id -> (track, frames to score)
    for t in tracks.tracks:
        count = min(t.length, max_frames, audio_frames - t.first)
        if count >= max(MIN_SPEAKER_FRAMES, MIN_FRAMES):
            spans[t.id] = (t, count)
    if not spans:
        return {}
    smooth = {i: smooth_track(_filled(t, n)) for i, (t, n) in spans.items()}
    crops: dict[int, list[np.ndarray]] = {i: [] for i in spans}
    out: dict[int, float] = {}
    end = max(t.first + n for t, n in spans.values())
    with FrameReader(video_path, tracks.width, tracks.height, fps=FPS) as reader:
        for frame_no, frame in enumerate(itertools.islice(reader, end)):
            if should_stop is not None:
                should_stop()
            for i, (t, n) in spans.items():
                if t.first <= frame_no < t.first + n:
                    cx, cy, s = smooth[i][frame_no - t.first]
                    crops[i].append(crop_face(frame, cx, cy, s))
                    if len(crops[i]) == n:  # complete: score it and free the crops
                        speech = pcm[t.first * SAMPLES_PER_FRAME : (t.first + n) * SAMPLES_PER_FRAME]
                        out[i] = scorer.confidence(np.stack(crops.pop(i)), speech)
    return out
