"""A disk-backed store of decoded frames for random access (the ping-pong loop plays the
source backwards). Frames are read with ``pread`` rather than a memory map so that they
do not accumulate in the process's resident memory."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


class FrameStore:
    def __init__(self, path: Path, height: int, width: int):
        self.path = path
        self.shape = (height, width, 3)
        self.frame_bytes = height * width * 3
        self.count = 0
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)

    def append(self, frame: np.ndarray) -> None:
        os.pwrite(self._fd, np.ascontiguousarray(frame, dtype=np.uint8).tobytes(), self.count * self.frame_bytes)
        self.count += 1

    def get(self, index: int) -> np.ndarray:
        if not 0 <= index < self.count:
            raise IndexError(index)
        buf = os.pread(self._fd, self.frame_bytes, index * self.frame_bytes)
        return np.frombuffer(buf, np.uint8).reshape(self.shape)

    def close(self) -> None:
        os.close(self._fd)
        self.path.unlink(missing_ok=True)
