"""Cost of keeping 1080p frames losslessly (issue 16 item 8): per-frame write and read ms
and bytes of lossless codecs on frames of the bundled 1080x1920 clip (one thread each,
every round trip checked bit-exact), then the ``FrameStore`` as a job uses it (its
threads: appends, then reads in ping-pong order).

    .venv/bin/python -m scripts.bench_frame_store --frames 12
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from latentsync_core.media.video_io import FrameReader
from latentsync_core.storage.frame_store import FrameStore

ROOT = Path(__file__).resolve().parent.parent
W, H = 1080, 1920
Codec = tuple[Callable[[np.ndarray], bytes], Callable[[bytes], np.ndarray]]


def _png(*params: int) -> Codec:
    def enc(f: np.ndarray) -> bytes:
        return cv2.imencode(".png", f, list(params))[1].tobytes()

    def dec(b: bytes) -> np.ndarray:
        return cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_UNCHANGED)

    return enc, dec


CODECS: dict[str, Codec] = {
    "raw": (lambda f: f.tobytes(), lambda b: np.frombuffer(b, np.uint8).reshape(H, W, 3)),
    "zlib level 1 (no filter)": (
        lambda f: zlib.compress(f.tobytes(), 1),
        lambda b: np.frombuffer(zlib.decompress(b), np.uint8).reshape(H, W, 3),
    ),
    "PNG level 1 (adaptive filters)": _png(cv2.IMWRITE_PNG_COMPRESSION, 1),
    "PNG level 1, up filter (the store)": _png(
        cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP
    ),
    "PNG level 3 (adaptive filters)": _png(cv2.IMWRITE_PNG_COMPRESSION, 3),
    "WebP lossless": (
        lambda f: cv2.imencode(".webp", f, [cv2.IMWRITE_WEBP_QUALITY, 101])[1].tobytes(),
        lambda b: cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_UNCHANGED),
    ),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=12, help="frames of the clip, a second apart")
    args = ap.parse_args()
    frames: list[np.ndarray] = []
    with FrameReader(ROOT / "assets" / "demo1_video.mp4", W, H) as reader:
        for i, f in enumerate(reader):
            if i % 25 == 0:
                frames.append(f.copy())
            if len(frames) == args.frames:
                break
    raw = H * W * 3
    print(f"{len(frames)} frames {W}x{H}, {raw / 2**20:.2f} MiB raw; {os.cpu_count()} cores, load {os.getloadavg()}")
    for name, (enc, dec) in CODECS.items():
        t_enc = t_dec = size = 0.0
        for f in frames:
            t = time.perf_counter()
            data = enc(f)
            t_enc += time.perf_counter() - t
            t = time.perf_counter()
            back = dec(data)
            t_dec += time.perf_counter() - t
            assert np.array_equal(back, f), name
            size += len(data)
        n = len(frames)
        print(f"  {name:36s} write {t_enc / n * 1e3:6.1f} ms  read {t_dec / n * 1e3:6.1f} ms"
              f"  {size / n / 2**20:5.2f} MiB/frame ({size / n / raw:4.0%} of raw)")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        store = FrameStore(Path(tmp) / "frames", H, W)
        t = time.perf_counter()
        for f in frames:
            store.append(f)
        store.flush()
        t_write = time.perf_counter() - t
        t = time.perf_counter()
        back = store.get_many(list(range(len(frames)))[::-1])
        t_read = time.perf_counter() - t
        assert all(np.array_equal(b, f) for b, f in zip(back, frames[::-1], strict=True))
        n = len(frames)
        print(f"FrameStore (4 threads): write {t_write / n * 1e3:.1f} ms/frame, read {t_read / n * 1e3:.1f} ms/frame,"
              f" {store.bytes_written / n / 2**20:.2f} MiB/frame")  # fmt: skip
        store.close()


if __name__ == "__main__":
    main()
