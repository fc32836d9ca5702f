"""The soak's long form (issue 22): embedded mode (SQLite, one CPU device, a 64 MB disk of its
own) and then cluster mode (redis-server, an API node, two CPU workers), each driven by a
seeded mix of uploads, polls, cancels, deletes, slow and idle clients and every fault its mode
has (kill -9 and SIGTERM of the API, of a worker, a Redis restart, a full disk), then checked
by ``tests/soak.py``'s invariants. Prints the figures as a table and writes
``bench_soak.json`` and ``bench_soak.png`` (poll latency histograms) into ``--out``.

    .venv/bin/python -m scripts.bench_soak [--seed 22] [--steps 60] [--faults 2] [--out scripts]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from tests.media_helpers import short_job_inputs
from tests.soak import SETTINGS, Soak, WebhookReceiver, make_plan
from tests.soak_services import Cluster, Embedded, Service

ROOT = Path(__file__).resolve().parent.parent
DISK_MB = 64


def soak_one(mode: str, service: Service, inputs: dict[str, Path], seed: int, steps: int, repeat: int) -> dict:
    receiver = WebhookReceiver()
    began = time.time()
    try:
        soak = Soak(service, inputs, seed, receiver)
        soak.warm_up()
        faults = service.faults() + ["sigterm_webhook_pending"] + (["full_disk"] if mode == "embedded" else [])
        soak.run(make_plan(seed, steps, faults * repeat))
        soak.wait_all(timeout=600)
        problems = soak.check()
        figures = soak.figures()
    finally:
        service.close()
        receiver.close()
    figures |= {"mode": mode, "seconds": round(time.time() - began), "problems": problems}
    figures["poll_ms"] = soak.ledger.poll_ms
    if isinstance(service, Cluster):
        figures["worker_peak_rss_mb"] = {w.name: round(w.peak, 1) for w in service.workers}
        figures["worker_sigterm_exit_s"] = [round(s, 1) for s in service.sigterm_exit_s]
    return figures


def table(results: list[dict]) -> str:
    rows = ["mode", "seconds", "jobs_accepted", "jobs_by_end", "uploads_refused", "faults", "actions", "polls",
            "poll_p50_ms", "poll_p99_ms", "webhook_deliveries", "api_peak_rss_mb", "worker_peak_rss_mb",
            "worker_sigterm_exit_s", "problems"]  # fmt: skip
    lines = []
    for row in rows:
        cells = [json.dumps(r.get(row, "-")) if not isinstance(r.get(row), str) else r[row] for r in results]
        lines.append(f"{row:<22} " + " | ".join(f"{c:<60}" for c in cells))
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4), squeeze=False)
    for ax, r in zip(axes[0], results, strict=True):
        ax.hist(r["poll_ms"], bins=60, log=True)
        ax.set_title(f"{r['mode']}: GET /jobs/{{id}} (p50 {r['poll_p50_ms']} ms, p99 {r['poll_p99_ms']} ms)")
        ax.set_xlabel("ms")
        ax.set_ylabel("polls")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=22)
    ap.add_argument("--steps", type=int, default=60, help="traffic actions per mode")
    ap.add_argument("--faults", type=int, default=2, help="times each fault is injected per mode")
    ap.add_argument("--modes", default="embedded,cluster")
    ap.add_argument("--out", type=Path, default=ROOT / "scripts", help="where the JSON and the PNG go")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    folder = Path(tempfile.mkdtemp(prefix="bench-soak-"))  # kept when the soak finds a problem: the logs
    (folder / "media").mkdir()
    inputs = short_job_inputs(ROOT / "assets", folder / "media")
    for mode in args.modes.split(","):
        (folder / mode).mkdir()
        if mode == "embedded":
            service: Service = Embedded(folder / mode, DISK_MB, **SETTINGS)
        else:
            service = Cluster(folder / mode, worker_lease_s=3.0, detect_workers=1, **SETTINGS)
        results.append(soak_one(mode, service, inputs, args.seed, args.steps, args.faults))
        print(f"{mode}: done in {results[-1]['seconds']} s", flush=True)
    print(table(results))
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())  # fmt: skip
    machine = f"{cpu}, {os.cpu_count()} cores, CPU only"
    summary = {"machine": machine, "seed": args.seed, "results": [{k: v for k, v in r.items() if k != "poll_ms"}
                                                                   for r in results]}  # fmt: skip
    (args.out / "bench_soak.json").write_text(json.dumps(summary, indent=2))
    plot(results, args.out / "bench_soak.png")
    if any(r["problems"] for r in results):
        raise SystemExit(f"the soak found problems (above); logs in {folder}")
    shutil.rmtree(folder)


if __name__ == "__main__":
    main()
