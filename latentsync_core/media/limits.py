"""The limits an untrusted input is held to, and the checks of what a probe says against them.

Container metadata can lie (a Matroska header may claim 1 s and hold 20 minutes), so the
durations checked here from a probe are only a quick first refusal: the decoders enforce
the same limits on what they actually decode (``FrameReader``'s ``max_frames``,
``load_audio``'s ``max_seconds``) and stop as soon as one is passed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from latentsync_core.common.errors import MediaError
from latentsync_core.storage.job_disk import DiskEstimate, JobExtent, estimate_job_disk

if TYPE_CHECKING:
    from latentsync_core.media.info import MediaInfo

# Compressed audio carries encoder priming and padding (AAC: 2112 samples, 0.26 s at 8 kHz)
# beyond its nominal length: decoded audio may pass the limit by this much.
AUDIO_SLACK_S = 0.5


@dataclass(frozen=True)
class MediaLimits:
    """What an input may be. The defaults limit nothing but the probe (a library caller's
    own files); a service sets every field from its settings."""

    max_video_s: float = math.inf
    max_audio_s: float = math.inf
    max_pixels: int | None = None  # frame width x height, as decoded (after rotation)
    probe_timeout_s: float = 30.0  # a probe that takes longer fails with PROBE_FAILED
    probe_memory_mb: int = 1024  # address space of a probe's ffmpeg/ffprobe child
    # A service's inputs are checked when submitted and read later: a name replaced by a
    # symlink in between must not be followed. A library caller's own symlinks may be.
    follow_symlinks: bool = True
    # Worst-case disk a job may need (frame store, moments, output: ``job_disk.py``); the
    # frame store also stops at it while writing. None: unlimited.
    max_job_disk_bytes: int | None = None

    def max_video_frames(self, fps: float) -> int | None:
        """Frames at ``fps`` that the longest allowed video decodes to (one more for
        rounding); None when unlimited."""
        return None if math.isinf(self.max_video_s) else int(self.max_video_s * fps) + 1

    def max_audio_seconds(self) -> float | None:
        return None if math.isinf(self.max_audio_s) else self.max_audio_s

    def check_video(self, info: MediaInfo) -> None:
        if self.max_pixels is not None and info.width * info.height > self.max_pixels:
            raise MediaError(
                "FRAME_TOO_LARGE",
                f"video frames are {info.width}x{info.height} ({info.width * info.height} pixels);"
                f" the limit is {self.max_pixels} pixels",
            )
        if info.duration > self.max_video_s:
            raise video_too_long(info.duration, self.max_video_s)

    def check_audio(self, info: MediaInfo) -> None:
        if info.duration > self.max_audio_s:
            raise audio_too_long(info.duration, self.max_audio_s)

    def check_disk(
        self, video: MediaInfo, audio: MediaInfo, extent: JobExtent | None = None, live_stream: bool = False
    ) -> DiskEstimate:
        """The job's worst-case disk need (``extent``: what its ``sync_mode`` reads and shows,
        default ``bounce``'s; ``live_stream``: it also writes the live stream);
        JOB_TOO_LARGE_FOR_DISK when over the limit."""
        estimate = estimate_job_disk(video.width, video.height, video.duration, audio.duration, extent, live_stream)
        if self.max_job_disk_bytes is not None and estimate.total > self.max_job_disk_bytes:
            raise disk_limit_error(estimate.total, self.max_job_disk_bytes)
        return estimate


def disk_limit_error(needed: int, limit: int) -> MediaError:
    return MediaError(
        "JOB_TOO_LARGE_FOR_DISK",
        f"the job needs up to {needed / 2**30:.2f} GiB of disk (worst case); the limit is {limit / 2**30:.2f} GiB",
    )


def video_too_long(seconds: float, limit: float, decoded: bool = False) -> MediaError:
    what = "video decodes to more than" if decoded else "video lasts"
    return MediaError("VIDEO_TOO_LONG", f"{what} {seconds:.0f} s; the limit is {limit:.0f} s")


def audio_too_long(seconds: float, limit: float, decoded: bool = False) -> MediaError:
    what = "audio decodes to more than" if decoded else "audio lasts"
    return MediaError("AUDIO_TOO_LONG", f"{what} {seconds:.0f} s; the limit is {limit:.0f} s")
