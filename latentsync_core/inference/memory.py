"""How many full frames a job holds at once: the rule the pipeline follows, and the bound
on host memory it gives (the README states it).

Full frames (H x W x 3 bytes each) pass through the job one 16-frame window at a time:
decoded into one buffer per window, aligned, denoised, pasted back into that same buffer,
queued for the encoder. With small frames the queues before and after the UNet are two
windows deep (the GPU never waits); once a window's frames pass ``BIG_WINDOW_BYTES``, one
window each side is enough to hide decoding and encoding, and the float copy the face
warp makes (4 bytes per channel) is made a few frames at a time instead of for the whole
window (16 frames of 8K in float32 are 6.4 GB)."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

from latentsync_core.inference.source import WINDOW

BIG_WINDOW_BYTES = 128 * 2**20  # 16 frames of 1080p (95 MiB) stay on the default path
FLOAT_BATCH_BYTES = 64 * 2**20  # float32 copy of the frames warped at once, when frames are big
FLOAT_BYTES = 4  # float32 per uint8 channel value
TRANSIT_FRAMES = 5  # single frames in the decoder, the encoder and the paste (``held_frames``)
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD_BYTES = 4 * 2**20  # a 720p frame is 2.6 MiB


@dataclass(frozen=True)
class FramePolicy:
    frame_bytes: int  # one decoded RGB frame
    windows_ahead: int  # decoded and aligned windows waiting for the UNet
    windows_behind: int  # finished windows waiting for the encoder
    float_batch: int  # frames converted to float at once for the face warp

    @classmethod
    def for_frames(cls, width: int, height: int) -> FramePolicy:
        frame_bytes = width * height * 3
        if WINDOW * frame_bytes <= BIG_WINDOW_BYTES:
            return cls(frame_bytes, windows_ahead=2, windows_behind=2, float_batch=WINDOW)
        batch = max(1, min(WINDOW, FLOAT_BATCH_BYTES // (FLOAT_BYTES * frame_bytes)))
        return cls(frame_bytes, windows_ahead=1, windows_behind=1, float_batch=batch)

    @property
    def windows_in_flight(self) -> int:
        """Window buffers alive at once on one device: those queued ahead, the one being
        decoded, the one on the device, one finished waiting for its turn (``run_windows``),
        those queued for the encoder and the one being written."""
        return self.windows_ahead + 1 + 1 + 1 + self.windows_behind + 1

    def held_frames(self, frames: int, on_gpu: bool = False) -> int:
        """Full-frame equivalents of host memory held at once by a job of ``frames`` output
        frames: the window buffers (never more than the job's frames; on a GPU the window
        on the device has a second host buffer, its finished frames), the float copy of
        the warp, and the single frames in transit: two in the decoder (the pipe's buffer
        and the frame read), one going to the encoder, two in the paste (the frame and
        its copy; on the CPU the paste goes one frame at a time)."""
        buffers = min(frames, (self.windows_in_flight + int(on_gpu)) * WINDOW)
        return buffers + FLOAT_BYTES * self.float_batch + TRANSIT_FRAMES

    def bound_bytes(self, frames: int, on_gpu: bool = False) -> int:
        """Host memory for frames a job of ``frames`` output frames holds at once, at most."""
        return self.held_frames(frames, on_gpu) * self.frame_bytes


def return_freed_frames() -> None:
    """Make glibc serve every block of ``MMAP_THRESHOLD_BYTES`` or more with its own
    mapping, given back to the system when freed. Left to itself glibc raises that
    threshold to the size of the largest block freed (up to 32 MiB), so freed frames of
    up to 32 MiB (4K) stay in its heaps and the process keeps them (a third more resident
    memory for 1440x2560 frames in ``scripts/bench_frame_memory.py``). Nothing elsewhere."""
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
