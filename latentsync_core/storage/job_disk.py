"""How much disk a job may take, known from its probes before it runs.

A job writes what grows with its length: the frame store (source frames kept for random
access when the video may loop, ``frame_store.py``), the VAE moments of every source frame
read (``template_cache.py``), the output file, and while it runs the live stream (a second
encode of the output, ``GET /jobs/{id}/stream``). How many frames are read, shown and
stored follows from the job's ``sync_mode`` (``inference/length_modes.job_extent``). The estimate is a worst case:
the store's bound is that of incompressible frames (its PNG frames are about 29% of that
on natural video) and the output's a generous bit rate, so a job within the limit does
not run out of its share half-way (the store also enforces its share while writing).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from latentsync_core.media.constants import FPS

# The source plan keeps frames when the output may be longer than this many frames less
# than the probe's count (a probe can over-state a video's length by a little).
STORE_MARGIN_FRAMES = 2 * FPS
# Moments: 2 x 8 channels at 1/8 of the 512 px face, float32 (the larger of the dtypes).
MOMENT_BYTES_PER_FRAME = 2 * 8 * 64 * 64 * 4
# H.264 at CRF 18 keeps natural video well under 1 bit per pixel (the bundled clip: 0.07).
OUTPUT_BYTES_PER_PIXEL = 1 / 8
AUDIO_BYTES_PER_S = 160_000 // 8  # AAC at 160 kbit/s


def max_frame_bytes(height: int, width: int) -> int:
    """The most one frame in the frame store (a PNG) can take: incompressible input (noise) grows by a filter
    byte per row, deflate's block headers (5 bytes per 16 KiB) and OpenCV's PNG chunks (12
    bytes per 8 KiB): 0.2%, bounded here by 0.8%. Lossless compression cannot promise less
    than the raw size, so a worst-case estimate uses this."""
    raw = height * width * 3
    return raw + raw // 128 + 4096


def needs_frame_store(n_out: int, probed_frames: int) -> bool:
    """Whether output frames may need random access to the source (the video loops)."""
    return n_out > probed_frames - STORE_MARGIN_FRAMES


@dataclass(frozen=True)
class JobExtent:
    """How much of the video a job reads, how long its output is, and whether it keeps a
    frame store (``inference/length_modes.job_extent`` gives it for each ``sync_mode``)."""

    frames_read: int
    output_frames: int
    keeps_store: bool


def default_extent(audio_frames: int, probed_frames: int) -> JobExtent:
    """The default mode's (``bounce``): the speech's frames, the video read as far as they go."""
    return JobExtent(min(probed_frames, audio_frames), audio_frames, needs_frame_store(audio_frames, probed_frames))


@dataclass(frozen=True)
class DiskEstimate:
    """Worst-case bytes of one job, by what writes them."""

    frame_store: int
    moments: int
    output: int
    stream: int = 0  # the live stream's file while the job runs (none when streams are off)

    @property
    def total(self) -> int:
        return self.frame_store + self.moments + self.output + self.stream

    def to_json(self) -> dict[str, int]:
        return {**asdict(self), "total": self.total}


def estimate_job_disk(
    width: int,
    height: int,
    video_s: float,
    audio_s: float,
    extent: JobExtent | None = None,
    live_stream: bool = False,
) -> DiskEstimate:
    """The worst case for a ``width`` x ``height`` video of ``video_s`` seconds lip-synced
    to ``audio_s`` seconds of speech (durations as probed; the decoders hold inputs to the
    duration limits whatever their containers claim). ``extent``: what the job's
    ``sync_mode`` reads and shows (default: ``bounce``'s)."""
    n_audio = math.ceil(audio_s * FPS)  # one output frame per 40 ms audio window
    probed = max(1, round(video_s * FPS))
    extent = extent or default_extent(n_audio, probed)
    n_src = min(probed, extent.frames_read)  # source frames past what the output shows are never decoded
    store = n_src * max_frame_bytes(height, width) if extent.keeps_store else 0
    n_out = extent.output_frames
    output = math.ceil(n_out * width * height * OUTPUT_BYTES_PER_PIXEL + n_out / FPS * AUDIO_BYTES_PER_S)
    return DiskEstimate(
        frame_store=store,
        moments=n_src * MOMENT_BYTES_PER_FRAME,
        output=output,
        stream=output if live_stream else 0,
    )
