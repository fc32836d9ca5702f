"""Face detection speed and what detecting only every k-th frame costs in alignment (issue 15
item 3), on the bundled 1080x1920 clip with the embedded dlib detector.

Speed: frames/s of the detector over the clip's frames (decoded beforehand, so decoding is
not counted) on 1 and 2 threads, on a spawn process pool of 2, and with ``detect_strided``;
the runs are interleaved (A, B, C, A, B, C, ...) and the medians reported, since this
machine may be shared.

Accuracy: every frame detected is the reference. For each stride k (and each motion
threshold), the points the strided pass gives are compared with the reference points
(pixel distance, over the interpolated frames), and the 512 px faces the model sees
(``FaceAligner.model_faces``, through the smoothed matrices of the whole sequence) with
the reference faces (absolute difference in grey levels, 0..255). As a yardstick, the same
for the reference points moved by uniform noise of +-0.5 px: the size of the rounding the
detector already applies to its points.

    .venv/bin/python -m scripts.bench_face_detect --json bench_face_detect.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import platform
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import torch

from latentsync_core.media.probe import probe_video
from latentsync_core.media.video_io import FrameReader
from latentsync_core.vision.alignment import FaceAligner
from latentsync_core.vision.face_detection import DlibFaceDetector, Face, detect_in_order
from latentsync_core.vision.strided_detection import detect_strided

ROOT = Path(__file__).resolve().parent.parent
VIDEO = ROOT / "assets" / "demo1_video.mp4"

# ---- process pool (spawn: forking after torch/threads started is unsafe) ------------------
_WORKER_DETECTOR: DlibFaceDetector | None = None


def _init_worker() -> None:
    global _WORKER_DETECTOR
    _WORKER_DETECTOR = DlibFaceDetector()


def _detect_in_worker(frame: np.ndarray) -> Face | None:
    assert _WORKER_DETECTOR is not None
    return _WORKER_DETECTOR.detect(frame)


def _detect_process_pool(pool: ProcessPoolExecutor, frames: list[np.ndarray], workers: int) -> list[Face | None]:
    """In order with the same bounded look-ahead as ``detect_in_order``."""
    out: list[Face | None] = []
    pending: deque = deque()
    for frame in frames:
        pending.append(pool.submit(_detect_in_worker, frame))
        if len(pending) >= 2 * workers:
            out.append(pending.popleft().result())
    out.extend(f.result() for f in pending)
    return out


# ---- speed ---------------------------------------------------------------------------------
def measure_speed(frames: list[np.ndarray], repeats: int, stride: int, max_motion: float) -> dict[str, dict]:
    detector = DlibFaceDetector()
    pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker)
    list(pool.map(_detect_in_worker, frames[:2]))  # started and warm before timing: once, not per job
    modes = {
        "threads=1": lambda: list(detect_in_order(detector, frames, 1)),
        "threads=2": lambda: list(detect_in_order(detector, frames, 2)),
        "processes=2 (spawn)": lambda: _detect_process_pool(pool, frames, 2),
        f"threads=2 stride={stride}": lambda: list(detect_strided(detector, frames, 2, stride, max_motion)),
    }
    times: dict[str, list[float]] = {name: [] for name in modes}
    try:
        for rep in range(repeats):
            for name, run in modes.items():
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
                print(f"  rep {rep + 1}/{repeats} {name}: {len(frames) / times[name][-1]:.2f} frames/s", flush=True)
    finally:
        pool.shutdown()
    return {
        name: {"fps_median": len(frames) / statistics.median(ts), "fps_runs": [len(frames) / t for t in ts]}
        for name, ts in times.items()
    }


def measure_stages(frames: list[np.ndarray]) -> dict[str, float]:
    """Median ms per frame of each step of ``DlibFaceDetector.detect``, single-threaded."""
    d = DlibFaceDetector()
    h, w = frames[0].shape[:2]
    scale = min(1.0, d.detect_size / min(h, w))
    size = (round(w * scale), round(h * scale))
    rows: dict[str, list[float]] = {"resize (INTER_AREA)": [], "grey": [], "HOG scan": [], "68 landmarks": []}
    for frame in frames:
        t0 = time.perf_counter()
        small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        t1 = time.perf_counter()
        grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        t2 = time.perf_counter()
        rects = d._detector(grey, d.upsample)
        t3 = time.perf_counter()
        if len(rects):
            d._predictor(grey, rects[0])
        t4 = time.perf_counter()
        for key, dt in zip(rows, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            rows[key].append(dt * 1e3)
    return {key: statistics.median(v) for key, v in rows.items()}


def _longest_stall(work: Callable[[], object]) -> float:
    """Run ``work`` on a thread while this thread loops; the longest pause of the loop as a
    share of the call's time. A call holding the GIL all along stalls the loop for most of
    it; one releasing the GIL only for the OS's scheduling gaps (this machine's other load)."""
    done = threading.Event()
    longest, start = 0.0, time.perf_counter()
    th = threading.Thread(target=lambda: (work(), done.set()))
    th.start()
    last = time.perf_counter()
    while not done.is_set():
        now = time.perf_counter()
        longest, last = max(longest, now - last), now
    th.join()
    return longest / (time.perf_counter() - start)


def measure_gil(frame: np.ndarray, calls: int = 8) -> dict[str, float]:
    """Median longest stall (``_longest_stall``) over ``calls`` calls of each detector step,
    with a pure-Python loop as the GIL-holding control (its stalls: the 5 ms switch interval)."""
    d = DlibFaceDetector()
    grey = cv2.cvtColor(cv2.resize(frame, (480, 853), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    rect = d._detector(grey, 0)[0]
    steps: dict[str, Callable[[], object]] = {
        "python loop (control)": lambda: [i for i in range(400_000)],
        "HOG scan": lambda: d._detector(grey, 0),
        "68 landmarks x10": lambda: [d._predictor(grey, rect) for _ in range(10)],
    }
    return {name: statistics.median(_longest_stall(work) for _ in range(calls)) for name, work in steps.items()}


def measure_decode(video: Path, info_size: tuple[int, int], frames: int) -> float:
    """Frames/s of decoding alone (``FrameReader``, as the planner reads the video)."""
    start = time.perf_counter()
    with FrameReader(video, *info_size) as reader:
        n = sum(1 for _ in itertools.islice(reader, frames))
    return n / (time.perf_counter() - start)


# ---- accuracy ------------------------------------------------------------------------------
class _Replay:
    """A detector answering from the reference detections (frames are their indices), so the
    strided pass is replayed exactly without detecting again; counts the frames it is asked."""

    name = "replay"

    def __init__(self, faces: list[Face | None]):
        self.faces, self.calls = faces, 0

    def detect(self, frame: np.ndarray) -> Face | None:
        self.calls += 1
        return self.faces[int(frame[0])]


def strided_faces(ref: list[Face | None], stride: int, max_motion: float) -> tuple[list[Face | None], float]:
    replay = _Replay(ref)
    marks = [np.array([i]) for i in range(len(ref))]
    faces = [face for _, face in detect_strided(replay, marks, 1, stride, max_motion)]
    return faces, replay.calls / len(ref)


def matrices_of(faces: list[Face | None]) -> np.ndarray:
    aligner = FaceAligner(512)
    return np.stack([aligner.matrix(f.points) if f is not None else np.full((2, 3), np.nan, np.float32)
                     for f in faces])  # fmt: skip


def model_faces(frames: list[np.ndarray], matrices: np.ndarray, idx: np.ndarray) -> np.ndarray:
    aligner = FaceAligner(512)
    out = []
    for chunk in np.array_split(idx, max(1, len(idx) // 16)):
        if len(chunk):
            batch = torch.from_numpy(np.stack([frames[i] for i in chunk]))
            out.append(aligner.model_faces(batch, torch.from_numpy(matrices[chunk])))
    return np.concatenate(out) if out else np.zeros((0, 512, 512, 3), np.uint8)


def compare(frames: list[np.ndarray], ref: list[Face | None], ref_faces: np.ndarray, ref_m: np.ndarray,
            faces: list[Face | None]) -> dict:  # fmt: skip
    """Point error over the frames whose points differ, and 512 px face difference over all frames."""
    has = np.array([f is not None for f in ref])
    if any((a is None) != (b is None) for a, b in zip(ref, faces, strict=True)):
        raise AssertionError("a strided pass changed which frames have a face")
    err = np.array([np.linalg.norm(np.asarray(f.points, np.float64) - r.points, axis=1)
                    for f, r in zip(faces, ref, strict=True) if f is not None and r is not None])  # fmt: skip
    changed = err.max(axis=1) > 0
    m = matrices_of(faces)
    differ = np.flatnonzero(has & np.any(m != ref_m, axis=(1, 2)))
    diff = np.zeros(len(ref), np.float64)
    diff_max = 0
    if len(differ):
        got = model_faces(frames, m, differ)
        d = np.abs(got.astype(np.int16) - ref_faces[differ].astype(np.int16))
        diff[differ] = d.reshape(len(differ), -1).mean(axis=1)
        diff_max = int(d.max())
    e = err[changed].ravel() if changed.any() else np.zeros(1)
    return {
        "frames_with_other_points": int(changed.sum()),
        "point_err_px_max": float(e.max()),
        "point_err_px_p99": float(np.percentile(e, 99)),
        "point_err_px_mean": float(e.mean()),
        "face_diff_mean": float(diff[has].mean()),  # grey levels, mean over all face frames and pixels
        "face_diff_worst_frame_mean": float(diff.max()),
        "face_diff_max": diff_max,
    }


def measure_accuracy(frames: list[np.ndarray], strides: list[int], thresholds: list[float]) -> dict:
    ref = [face for _, face in detect_in_order(DlibFaceDetector(), frames, 2)]
    has = np.array([f is not None for f in ref])
    ref_m = matrices_of(ref)
    ref_faces = np.zeros((len(ref), 512, 512, 3), np.uint8)
    ref_faces[has] = model_faces(frames, ref_m, np.flatnonzero(has))
    step = np.array([np.linalg.norm(b.points - a.points, axis=1).max()
                     for a, b in itertools.pairwise(ref) if a is not None and b is not None])  # fmt: skip
    rows: dict[str, dict] = {}
    rng = np.random.default_rng(0)
    noisy = [Face(f.box, f.points + rng.uniform(-0.5, 0.5, f.points.shape)) if f is not None else None for f in ref]
    yardstick = compare(frames, ref, ref_faces, ref_m, noisy)
    rows["reference points +-0.5 px noise"] = {"detected_fraction": 1.0, **yardstick}
    for k in strides:
        for t in [float("inf"), *thresholds]:
            faces, detected = strided_faces(ref, k, t)
            rows[f"stride={k} max_motion={t:g}"] = {"detected_fraction": detected,
                                                    **compare(frames, ref, ref_faces, ref_m, faces)}  # fmt: skip
            print(f"  stride={k} max_motion={t:g}: {rows[f'stride={k} max_motion={t:g}']}", flush=True)
    return {
        "frames": len(ref),
        "frames_with_face": int(has.sum()),
        "frame_to_frame_motion_px": {
            "median": float(np.median(step)),
            "p99": float(np.percentile(step, 99)),
            "max": float(step.max()),
        },  # fmt: skip
        "rows": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--video", type=Path, default=VIDEO)
    ap.add_argument("--frames", type=int, default=250, help="frames used for the accuracy part")
    ap.add_argument("--speed-frames", type=int, default=100, help="frames per timed run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--strides", type=int, nargs="+", default=[2, 3, 4])
    ap.add_argument("--thresholds", type=float, nargs="+", default=[2.0, 4.0, 8.0])
    ap.add_argument("--speed-stride", type=int, default=2)
    ap.add_argument("--speed-max-motion", type=float, default=4.0)
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    info = probe_video(args.video)
    with FrameReader(args.video, info.width, info.height) as reader:
        frames = list(itertools.islice(reader, args.frames))
    machine = {"cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(),
               "loadavg_at_start": os.getloadavg()}  # fmt: skip
    print(f"{args.video.name}: {info.width}x{info.height}, {len(frames)} frames; machine {machine}")
    result: dict = {"video": str(args.video), "size": [info.width, info.height], "machine": machine}
    if not args.skip_speed:
        print("speed (frames/s, interleaved runs):")
        result["speed"] = measure_speed(frames[: args.speed_frames], args.repeats, args.speed_stride,
                                        args.speed_max_motion)  # fmt: skip
        result["stages_ms"] = measure_stages(frames[: args.speed_frames])
        result["gil_longest_stall"] = measure_gil(frames[0])
        result["decode_fps"] = statistics.median(
            measure_decode(args.video, (info.width, info.height), args.speed_frames) for _ in range(args.repeats)
        )
    if not args.skip_accuracy:
        print("accuracy:")
        result["accuracy"] = measure_accuracy(frames, args.strides, args.thresholds)
    result["machine"]["loadavg_at_end"] = os.getloadavg()

    if "speed" in result:
        print(f"\n{'mode':32} {'frames/s (median)':>18}  runs")
        for name, row in result["speed"].items():
            print(f"{name:32} {row['fps_median']:18.2f}  {', '.join(f'{v:.2f}' for v in row['fps_runs'])}")
        stages = ", ".join(f"{k} {v:.1f}" for k, v in result["stages_ms"].items())
        print(f"\nms per frame, one thread (median): {stages}")
        gil = ", ".join(f"{k} {v:.2f}" for k, v in result["gil_longest_stall"].items())
        print(f"longest stall of a Python loop beside (share of the call): {gil}")
        print(f"decoding alone (FrameReader): {result['decode_fps']:.1f} frames/s")
    if "accuracy" not in result:
        _write(args.json, result)
        return
    acc = result["accuracy"]
    print(f"\nframe-to-frame motion of the points (px): {acc['frame_to_frame_motion_px']}")
    print(f"{'variant':34} {'detected':>8} {'pt max':>7} {'pt p99':>7} {'face mean':>9} {'worst frame':>11} "
          f"{'face max':>8}")  # fmt: skip
    for name, r in acc["rows"].items():
        print(f"{name:34} {r['detected_fraction']:8.2f} {r['point_err_px_max']:7.2f} {r['point_err_px_p99']:7.2f} "
              f"{r['face_diff_mean']:9.3f} {r['face_diff_worst_frame_mean']:11.3f} "
              f"{r['face_diff_max']:8d}")  # fmt: skip
    _write(args.json, result)


def _write(path: Path | None, result: dict) -> None:
    if path is not None:
        path.write_text(json.dumps(result, indent=2))
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
