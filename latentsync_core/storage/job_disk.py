"""How much disk a job may take, known from its probes before it runs.

A job writes three things that grow with its length: the frame store (source frames kept
for random access when the video may loop, ``frame_store.py``), the VAE moments of every
source frame (``template_cache.py``), and the output file. The estimate is a worst case:
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
class DiskEstimate:
    """Worst-case bytes of one job, by what writes them."""

    frame_store: int
    moments: int
    output: int

    @property
    def total(self) -> int:
        return self.frame_store + self.moments + self.output

    def to_json(self) -> dict[str, int]:
        return {**asdict(self), "total": self.total}


def estimate_job_disk(width: int, height: int, video_s: float, audio_s: float) -> DiskEstimate:
    """The worst case for a ``width`` x ``height`` video of ``video_s`` seconds lip-synced
    to ``audio_s`` seconds of speech (durations as probed; the decoders hold inputs to the
    duration limits whatever their containers claim)."""
    n_out = math.ceil(audio_s * FPS)  # one output frame per 40 ms audio window
    probed = max(1, round(video_s * FPS))
    n_src = min(probed, n_out)  # source frames past the output's length are never decoded
    store = n_src * max_frame_bytes(height, width) if needs_frame_store(n_out, probed) else 0
    output = math.ceil(n_out * width * height * OUTPUT_BYTES_PER_PIXEL + audio_s * AUDIO_BYTES_PER_S)
    return DiskEstimate(frame_store=store, moments=n_src * MOMENT_BYTES_PER_FRAME, output=output)
