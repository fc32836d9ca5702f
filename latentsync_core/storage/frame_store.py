"""A disk-backed store of decoded frames for random access (the ping-pong loop plays the
source backwards).

Frames are kept losslessly compressed (PNG, zlib level 1, the "up" filter: 29% of the raw
size on the bundled 1080p clip, measured in ``scripts/bench_frame_store.py``), appended to
one file and read back with ``pread`` so that they do not accumulate in the process's
resident memory. Encoding and decoding run on a few threads (OpenCV releases the GIL), a
bounded number of frames ahead, so a job's decode and detection threads are not held up.

The store holds at most ``max_bytes``: a video that decodes to more frames than its probe
said cannot make a job take more disk than it was admitted with."""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from latentsync_core.media.limits import disk_limit_error

# Level 1 with the "up" filter: about as small as level 3 with adaptive filters, several
# times faster to write and twice as fast to read (see the module docstring).
_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]


def _encode(frame: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(frame, dtype=np.uint8), _PNG_PARAMS)
    if not ok:
        raise RuntimeError("PNG encoding of a frame failed")
    return buf.tobytes()


class FrameStore:
    """Append frames (H, W, 3 uint8) in order; ``get`` any frame appended so far."""

    def __init__(self, path: Path, height: int, width: int, max_bytes: int | None = None, threads: int = 4):
        self.path = path
        self.shape = (height, width, 3)
        self.max_bytes = max_bytes
        self.count = 0  # appended (some may still be encoding)
        self.bytes_written = 0
        self._index: list[tuple[int, int]] = []  # (offset, length) of each written frame
        self._pending: deque[Future[bytes]] = deque()
        self._depth = 2 * threads  # frames held in memory while they encode
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="frame-store")
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)

    def append(self, frame: np.ndarray) -> None:
        if frame.shape != self.shape:
            raise ValueError(f"frame of shape {frame.shape}, the store holds {self.shape}")
        self._pending.append(self._pool.submit(_encode, frame.copy()))  # the caller may reuse its buffer
        self.count += 1
        while len(self._pending) > self._depth:
            self._write_oldest()

    def _write_oldest(self) -> None:
        data = self._pending.popleft().result()
        if self.max_bytes is not None and self.bytes_written + len(data) > self.max_bytes:
            raise disk_limit_error(self.bytes_written + len(data), self.max_bytes)
        os.pwrite(self._fd, data, self.bytes_written)
        self._index.append((self.bytes_written, len(data)))
        self.bytes_written += len(data)

    def flush(self) -> None:
        """Write every frame still encoding."""
        while self._pending:
            self._write_oldest()

    def get(self, index: int) -> np.ndarray:
        return self.get_many([index])[0]

    def get_many(self, indices: list[int]) -> list[np.ndarray]:
        """The frames at ``indices`` (decoded in parallel)."""
        self._ready(indices)
        return list(self._pool.map(self._read, indices))

    def read_into(self, indices: list[int], out: np.ndarray) -> None:
        """The frames at ``indices`` into ``out[k]`` (decoded in parallel; no second copy
        of them all is held at once)."""
        self._ready(indices)

        def fill(k: int) -> None:
            out[k] = self._read(indices[k])

        list(self._pool.map(fill, range(len(indices))))

    def _ready(self, indices: list[int]) -> None:
        """Check ``indices`` and write the frames still encoding that they ask for."""
        for i in indices:
            if not 0 <= i < self.count:
                raise IndexError(i)
        if max(indices, default=-1) >= len(self._index):
            self.flush()

    def _read(self, index: int) -> np.ndarray:
        offset, length = self._index[index]
        frame = cv2.imdecode(np.frombuffer(os.pread(self._fd, length, offset), np.uint8), cv2.IMREAD_UNCHANGED)
        if frame is None or frame.shape != self.shape:
            raise RuntimeError(f"stored frame {index} could not be read back")
        return frame

    def close(self) -> None:
        for pending in self._pending:
            pending.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=True)
        os.close(self._fd)
        self.path.unlink(missing_ok=True)
