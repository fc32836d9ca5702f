"""What a job does when the speech and the video have different lengths (``sync_mode``).

A pure function of three numbers: the speech's length ``A`` in output frames (one per
40 ms audio window), the video's length ``V`` in frames (25 fps) and the mode. It gives the
output's frame count, the source frame each output frame shows, and (``silence``) the
output frames that get silence instead of speech:

- ``bounce`` (default, upstream's ping-pong): ``A`` frames; the video plays forward, then
  backward, then forward... until the speech ends.
- ``loop``: ``A`` frames; the video restarts from its first frame.
- ``cut_off``: ``min(A, V)`` frames; whatever is longer is cut (the speech too).
- ``silence``: ``max(A, V)`` frames; when the video is longer its rest is generated with
  silence (mouth closed, the face stays the generated one); when the speech is longer, as bounce.
- ``remap``: ``A`` frames; the video's timing stretched or squeezed to the speech: output
  frame ``j`` shows source frame ``floor(j * V / A)`` (frames repeat or are skipped evenly).

Only numpy; no job, no file. ``job_extent`` gives what a mode reads and keeps, for the
disk estimate made before the job runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from latentsync_core.common.errors import CodedError
from latentsync_core.storage.job_disk import JobExtent, needs_frame_store

BOUNCE, LOOP, CUT_OFF, SILENCE, REMAP = "bounce", "loop", "cut_off", "silence", "remap"
SYNC_MODES = (BOUNCE, LOOP, CUT_OFF, SILENCE, REMAP)
DEFAULT_SYNC_MODE = BOUNCE


class InvalidSyncMode(CodedError, ValueError):
    def __init__(self, mode: object):
        super().__init__("INVALID_SYNC_MODE", f"sync_mode must be one of {', '.join(SYNC_MODES)} (got {mode!r})")


def check_sync_mode(mode: str) -> str:
    """``mode`` when it is a known sync mode, else :class:`InvalidSyncMode`."""
    if mode not in SYNC_MODES:
        raise InvalidSyncMode(mode)
    return mode


def bounce_index(j: int, n_source: int) -> int:
    """Source frame for output frame ``j``: forward, then backward, then forward, ..."""
    cycle, k = divmod(j, n_source)
    return k if cycle % 2 == 0 else n_source - 1 - k


@dataclass(frozen=True)
class LengthPlan:
    mode: str
    audio_frames: int  # A: output frames the speech gives
    video_frames: int  # V: source frames
    source_index: np.ndarray  # (frames,) int64: the source frame each output frame shows
    speech_frames: int  # output frames 0 .. speech_frames - 1 carry the speech; the rest get silence

    @property
    def frames(self) -> int:
        return len(self.source_index)

    @property
    def silent_frames(self) -> range:
        return range(self.speech_frames, self.frames)

    @property
    def sequential(self) -> bool:
        """True when the output shows source frames 0, 1, 2, ... in order (no random access)."""
        return bool(np.array_equal(self.source_index, np.arange(self.frames)))

    def to_json(self) -> dict:
        return {
            "mode": self.mode,
            "audio_frames": self.audio_frames,
            "video_frames": self.video_frames,
            "output_frames": self.frames,
            "silent_frames": [self.speech_frames, self.frames] if self.speech_frames < self.frames else None,
        }


def plan_length(mode: str, audio_frames: int, video_frames: int) -> LengthPlan:
    """The output of a job in ``mode`` with ``A = audio_frames``, ``V = video_frames`` (both >= 1)."""
    check_sync_mode(mode)
    a, v = int(audio_frames), int(video_frames)
    if a < 1 or v < 1:
        raise ValueError(f"audio and video frames must be at least 1 (got {a}, {v})")
    speech = a
    if mode == LOOP:
        index = np.arange(a) % v
    elif mode == CUT_OFF:
        index = np.arange(min(a, v))
        speech = len(index)
    elif mode == SILENCE and v > a:
        index = np.arange(v)
    elif mode == REMAP:
        index = np.arange(a, dtype=np.int64) * v // a  # exact integer floor(j * V / A)
    else:  # bounce, and silence with the speech at least as long as the video
        j = np.arange(a)
        cycle, k = np.divmod(j, v)
        index = np.where(cycle % 2 == 0, k, v - 1 - k)
    return LengthPlan(mode, a, v, index.astype(np.int64), speech)


def frames_to_read(mode: str, audio_frames: int) -> int | None:
    """The source frames a job in ``mode`` reads at most (None: the whole video): past the
    speech's length only ``silence`` and ``remap`` ever show a frame."""
    return None if check_sync_mode(mode) in (SILENCE, REMAP) else audio_frames


def keeps_frame_store(mode: str, audio_frames: int, probed_frames: int) -> bool:
    """Whether a job keeps the source frames for random access: when the output may show a
    frame again (the speech outlasts the video, up to the probe's error), and always for
    ``remap``, which shows frames out of the order a stream gives them when the probe is off."""
    return needs_frame_store(audio_frames, probed_frames) or check_sync_mode(mode) == REMAP


def job_extent(mode: str, audio_frames: int, probed_frames: int) -> JobExtent:
    """What a job in ``mode`` reads, shows and keeps, from the probed lengths (``A``, ``V``)."""
    a, v = max(1, int(audio_frames)), max(1, int(probed_frames))
    reads = min(v, frames_to_read(mode, a) or v)
    return JobExtent(reads, plan_length(mode, a, v).frames, keeps_frame_store(mode, a, v))
