"""The scores of one video: what ``eval run`` stores per output and training validation
reports (one implementation).

- sync (SyncNetV2, upstream's crop of the longest face track): ``lse_c``, ``lse_d``,
  ``offset`` in frames;
- ``face_fraction``: frames where the detector found a face / frames of the video;
- ``quality``: visual quality of the tracked face at its first, middle and last frame
  (``visual_quality.py``; the scorer's name travels with the number);
- FVD features: I3D features of the 16-frame face clip (``i3d.py``), for the set-level FVD.

A video without a usable face track gets ``face_fraction`` and a note, nothing else: the
report counts it as a failure of that model on that test rather than dropping it silently.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from latentsync_core.common.errors import CodedError
from latentsync_core.evaluation.i3d import FVD_FRAMES, I3DFeatures, face_crop, fvd_window
from latentsync_core.evaluation.visual_quality import QualityMeasure
from latentsync_core.media.audio_io import load_audio, to_int16
from latentsync_core.media.constants import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME
from latentsync_core.media.probe import probe_video
from latentsync_core.media.video_io import FrameReader
from latentsync_core.sync.track import FaceCrops, track_and_crop
from latentsync_core.sync.video import score_crops
from latentsync_core.vision.face_detection import FaceDetector


@dataclass
class VideoScore:
    lse_c: float | None = None
    lse_d: float | None = None
    offset: int | None = None
    face_fraction: float | None = None
    quality: float | None = None
    quality_model: str | None = None
    fvd_start: int | None = None  # first frame of the FVD clip
    features: np.ndarray | None = None  # (D,) I3D features of the FVD clip
    notes: list[str] = field(default_factory=list)  # why a score is missing

    def metrics(self) -> dict[str, float | None]:
        return {
            "lse_c": self.lse_c,
            "lse_d": self.lse_d,
            "offset": None if self.offset is None else float(self.offset),
            "face_fraction": self.face_fraction,
            "quality": self.quality,
        }


class VideoScorer:
    """Scores videos with the networks it is given; ``quality`` and ``i3d`` are optional
    (None: those scores are left out)."""

    def __init__(
        self,
        syncnet: torch.nn.Module,
        detector: FaceDetector,
        quality: QualityMeasure | None = None,
        i3d: I3DFeatures | None = None,
        detect_workers: int | None = 1,
    ):
        self.syncnet, self.detector, self.quality, self.i3d = syncnet, detector, quality, i3d
        self.detect_workers = detect_workers

    def score(self, video: str | Path, speech: str | Path | None = None, *, sync: bool = True) -> VideoScore:
        """Scores of ``video`` against ``speech`` (None: its own audio track); ``sync=False``
        skips SyncNet (a source video only needed for its FVD features)."""
        result = VideoScore()
        info = probe_video(video)
        try:
            faces = track_and_crop(video, self.detector, info, self.detect_workers)
        except CodedError as exc:
            result.face_fraction = 0.0 if exc.code == "NO_FACE" else None
            result.notes.append(f"{exc.code}: {exc.message}")
            return result
        result.face_fraction = faces.frames_with_face / faces.frames_decoded
        if sync:
            self._sync(result, faces, speech if speech is not None else video)
        if self.quality is not None or self.i3d is not None:
            self._faces(result, video, info.width, info.height, faces)
        return result

    def _sync(self, result: VideoScore, faces: FaceCrops, speech: str | Path) -> None:
        pcm = to_int16(load_audio(speech, SAMPLE_RATE))
        start = faces.first_frame * SAMPLES_PER_FRAME
        try:
            speech_pcm = pcm[start : start + len(faces.crops) * SAMPLES_PER_FRAME]
            report = score_crops(faces.crops, speech_pcm, self.syncnet, first_frame=faces.first_frame)
        except CodedError as exc:
            result.notes.append(f"sync {exc.code}: {exc.message}")
            return
        result.lse_c, result.lse_d, result.offset = report.lse_c, report.lse_d, report.offset_frames

    def _faces(self, result: VideoScore, video: str | Path, width: int, height: int, faces: FaceCrops) -> None:
        """One decode of the track's frames for both the quality frames and the FVD clip."""
        track = faces.track
        quality_frames = {track.first, track.first + track.length // 2, track.last}
        window = fvd_window(track) if self.i3d is not None else None
        if self.i3d is not None and window is None:
            result.notes.append(f"FVD: the face track lasts {track.length} frames, under {FVD_FRAMES}")
        fvd_frames = set(range(window, window + FVD_FRAMES)) if window is not None else set()
        quality_crops, fvd_crops = [], []
        last = max(quality_frames | fvd_frames)
        with FrameReader(video, width, height, fps=FPS) as reader:
            for index, frame in enumerate(itertools.islice(reader, track.first, last + 1), start=track.first):
                if index in quality_frames or index in fvd_frames:
                    crop = face_crop(frame, track.boxes[index - track.first])
                    if index in quality_frames:
                        quality_crops.append(crop)
                    if index in fvd_frames:
                        fvd_crops.append(crop)
        if self.quality is not None and quality_crops:
            result.quality, result.quality_model = self.quality(np.stack(quality_crops)), self.quality.name
        if self.i3d is not None and window is not None and len(fvd_crops) == FVD_FRAMES:
            result.fvd_start = window
            result.features = self.i3d.features(np.stack(fvd_crops)[None])[0]
