"""Sync score of a video while it is being written, from face boxes already known.

The service scores every job's output this way: the pipeline knows each output frame's
face box from its detection pass, so there is no second detection, and each window of
finished frames is cropped (as :mod:`latentsync_core.sync.track` crops: longest track,
smoothed box, padded 224 px square) and its 5-frame clips embedded at once. Only the lip
embeddings (4 KiB a frame) and the last four crops are kept, so memory does not grow with
the video; the audio is embedded at the end.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from latentsync_core.audio.mfcc import mfcc
from latentsync_core.media.constants import SAMPLE_RATE, SAMPLES_PER_FRAME
from latentsync_core.models.syncnet_v2 import CLIP_FRAMES
from latentsync_core.sync.score import MIN_FRAMES, embed_audio, embed_video, score_embeddings
from latentsync_core.sync.track import Box, build_tracks, crop_face, longest_track, smooth_track
from latentsync_core.sync.video import SyncReport, per_second_confidence

BATCH = 20


class SyncTap:
    """Feed it the output frames in order (:meth:`add`), then the speech (:meth:`finish`).

    ``boxes`` holds the face box of every output frame (None where the frame has no face).
    When no face track reaches 6 frames there is nothing to score and :meth:`finish`
    returns None.
    """

    def __init__(self, syncnet: torch.nn.Module, weights: str, boxes: Sequence[Box | None], vshift: int = 15):
        self.syncnet, self.weights, self.vshift = syncnet, weights, vshift
        track = longest_track(build_tracks(boxes))
        self.track = track if track is not None and track.length >= MIN_FRAMES else None
        self._smooth = smooth_track(self.track) if self.track is not None else None
        self._pending: list[np.ndarray] = []  # crops whose clips are not all embedded yet
        self._embeds: list[torch.Tensor] = []
        self._next = 0  # next output frame expected
        self.seconds = 0.0  # time spent cropping and embedding, for the job's timings

    def add(self, frames_rgb: np.ndarray) -> None:
        """The next output frames, (n, H, W, 3) uint8 RGB, in order."""
        t0 = time.perf_counter()
        self._add(frames_rgb)
        self.seconds += time.perf_counter() - t0

    def finish(self, pcm_int16: np.ndarray) -> SyncReport | None:
        """The report against 16 kHz int16 speech that starts with output frame 0."""
        t0 = time.perf_counter()
        try:
            return self._finish(pcm_int16)
        finally:
            self.seconds += time.perf_counter() - t0

    @torch.no_grad()
    def _add(self, frames_rgb: np.ndarray) -> None:
        start, self._next = self._next, self._next + len(frames_rgb)
        if self.track is None:
            return
        first, last = self.track.first, self.track.last
        for j in range(max(start, first), min(self._next, last + 1)):
            cx, cy, s = self._smooth[j - first]
            self._pending.append(crop_face(frames_rgb[j - start], cx, cy, s))
        clips = len(self._pending) - CLIP_FRAMES + 1
        if clips <= 0:
            return
        self._embeds.append(embed_video(self.syncnet, torch.from_numpy(np.stack(self._pending)), clips, BATCH))
        self._pending = self._pending[clips:]

    @torch.no_grad()
    def _finish(self, pcm_int16: np.ndarray) -> SyncReport | None:
        if self.track is None:
            return None
        pcm = np.asarray(pcm_int16).reshape(-1)[self.track.first * SAMPLES_PER_FRAME :]
        length = min(self.track.length, len(pcm) // SAMPLES_PER_FRAME)
        if length < MIN_FRAMES or not self._embeds:
            return None
        clips = length - CLIP_FRAMES  # as score_frames: the last clip start is length - 5
        video = torch.cat(self._embeds)[:clips]
        cepstra = torch.from_numpy(mfcc(pcm[: length * SAMPLES_PER_FRAME], SAMPLE_RATE))
        audio = embed_audio(self.syncnet, cepstra, clips, BATCH)
        score = score_embeddings(video, audio, self.vshift)
        return SyncReport(
            offset_frames=score.offset,
            lse_c=score.lse_c,
            lse_d=score.lse_d,
            frames_scored=length,
            weights=self.weights,
            per_second_confidence=per_second_confidence(score, self.track.first),
            first_frame=self.track.first,
        )
