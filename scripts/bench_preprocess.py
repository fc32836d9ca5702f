"""Throughput of the training-data pipeline: hours of footage processed per hour, peak
memory and where the time goes per stage.

Without ``--input-dir`` the corpus is ``--copies`` copies of the bundled 10 s 1080x1920
talking head (distinct names, so distinct sources). With demo weights (the default here)
the sync confidence is meaningless, so the sync and quality thresholds are opened and
every segment runs every stage (``--real-thresholds`` keeps the configured ones).

    .venv/bin/python -m scripts.bench_preprocess --copies 3
    .venv/bin/python -m scripts.bench_preprocess --input-dir RAW --official --gpus all
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = os.sysconf("SC_PAGE_SIZE")


def _tree_rss(root: int) -> tuple[int, int]:
    """(total, largest) resident bytes of ``root`` and all its descendants (from /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        kids = [c for c, p in parents.items() if p == pid and c not in tree]
        tree.update(kids)
        frontier += kids
    sizes = []
    for pid in tree:
        try:
            sizes.append(int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE)
        except (OSError, IndexError, ValueError):
            continue
    return sum(sizes), max(sizes, default=0)


class MemorySampler(threading.Thread):
    """Peak resident memory of this process tree (coordinator, workers, ffmpeg), sampled."""

    def __init__(self, interval: float = 0.25):
        super().__init__(daemon=True)
        self.interval, self.peak_total, self.peak_single = interval, 0, 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            total, single = _tree_rss(os.getpid())
            self.peak_total, self.peak_single = max(self.peak_total, total), max(self.peak_single, single)
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def _corpus(folder: Path, copies: int) -> Path:
    raw = folder / "raw"
    raw.mkdir()
    for i in range(copies):
        (raw / f"speaker{i:03d}.mp4").symlink_to(ROOT / "assets" / "demo1_video.mp4")
    return raw


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input-dir", help="raw videos (default: copies of the bundled clip)")
    ap.add_argument("--copies", type=int, default=3, help="copies of the bundled 10 s clip")
    ap.add_argument("--resolution", type=int, default=256, choices=(256, 512))
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--gpus", default="all")
    ap.add_argument("--device-threads", type=int, default=0, help="threads per device worker (0: auto)")
    ap.add_argument("--official", action="store_true", help="official SyncNet weights (else demo)")
    ap.add_argument("--real-thresholds", action="store_true", help="keep the configured sync/quality thresholds")
    ap.add_argument("--output-json", help="also write the results here")
    args = ap.parse_args()
    os.environ["LATENTSYNC_WEIGHTS"] = "official" if args.official else "demo"

    from latentsync_core.data import load_preprocess_config, run_preprocess

    values = {
        "resolution": args.resolution,
        "workers": args.workers,
        "gpus": args.gpus,
        "face_detect_threads": args.device_threads,
    }
    if not args.real_thresholds:
        values.update(sync_conf_threshold=-1.0, max_offset=15, min_sharpness=0.0)
    cfg = load_preprocess_config(values=values)
    with tempfile.TemporaryDirectory(prefix="bench-preprocess-") as tmp:
        raw = Path(args.input_dir) if args.input_dir else _corpus(Path(tmp), args.copies)
        sampler = MemorySampler()
        sampler.start()
        started = time.time()
        summary = run_preprocess(raw, Path(tmp) / "out", cfg, progress=False)
        wall = time.time() - started
        sampler.stop()
    report = summary.report
    footage_h = report["totals"]["input_footage_hours"]
    worker_total = sum(s["worker_seconds"] for s in report["stages"]) or 1.0
    result = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "devices": report["run"]["devices"]},
        "weights": report["weights"],
        "quality_model": report["quality_model"],
        "face_detector": report["face_detector"],
        "resolution": args.resolution,
        "workers": report["run"]["workers"],
        "footage_seconds": round(footage_h * 3600, 2),
        "clips_kept": report["totals"]["clips_kept"],
        "wall_seconds": round(wall, 2),
        "footage_hours_per_hour": round(footage_h * 3600 / wall, 4),
        "peak_memory_mb": {
            "process_tree": round(sampler.peak_total / 2**20),
            "largest_process": round(sampler.peak_single / 2**20),
        },
        "stages": {
            s["name"]: {
                "worker_seconds": s["worker_seconds"],
                "share": round(s["worker_seconds"] / worker_total, 3),
                "footage_x_realtime": s["footage_x_realtime"],
                "items": s["passed"] + s["rejected"],
            }
            for s in report["stages"]
        },
    }
    print(json.dumps(result, indent=2))
    m = result["machine"]
    where = f"{m['cpus']} cores ({', '.join(m['devices'])})"
    print(
        f"\n{result['footage_seconds']:.0f} s of footage in {wall:.1f} s on {where}: "
        f"{result['footage_hours_per_hour']:.3f} h of footage per hour; peak memory "
        f"{result['peak_memory_mb']['process_tree']} MB (all processes), "
        f"{result['peak_memory_mb']['largest_process']} MB (largest)"
    )
    for name, s in result["stages"].items():
        rate = f"{s['footage_x_realtime']:.2f}x realtime" if s["footage_x_realtime"] else "-"
        print(f"  {name:<9} {s['worker_seconds']:8.1f} worker s  {s['share'] * 100:5.1f} %  {rate}")
    if args.output_json:
        Path(args.output_json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
