"""Poll latency of ``GET /jobs/<id>`` in three situations (issue 16 item 10, aim: p99 < 50 ms):
the service idle, while a job runs, and during a burst of concurrent uploads.

Starts the real service (demo weights, CPU unless LATENTSYNC_DEVICE says otherwise) with an
API key, as deployed; one client polls a job as fast as it can (a short pause between polls)
while the situation lasts.

    .venv/bin/python -m scripts.bench_poll_latency [--polls 400] [--burst 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx

from server.client_util import ROOT, free_port, start_server, wait_ready

KEY = "bench-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
VIDEO, AUDIO = ROOT / "assets" / "demo1_video.mp4", ROOT / "assets" / "demo1_audio.wav"


def post(client: httpx.Client) -> httpx.Response:
    with open(VIDEO, "rb") as v, open(AUDIO, "rb") as a:
        return client.post("/lipsync", files={"video": ("v.mp4", v), "audio": ("a.wav", a)})


def poll(client: httpx.Client, job_id: str, until: threading.Event | None, count: int, pause: float) -> list[float]:
    """Milliseconds per poll: ``count`` polls, or as many as fit until ``until`` is set."""
    out: list[float] = []
    while (until is None and len(out) < count) or (until is not None and not until.is_set()):
        t0 = time.perf_counter()
        r = client.get(f"/jobs/{job_id}")
        out.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
        time.sleep(pause)
    return out


def summary(name: str, ms: list[float]) -> str:
    ms = sorted(ms)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"{name:<22} n={len(ms):4d}  median {statistics.median(ms):6.1f} ms  p99 {p99:6.1f} ms  max {ms[-1]:6.1f} ms"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--polls", type=int, default=400, help="polls in the idle phase")
    ap.add_argument("--burst", type=int, default=20, help="concurrent uploads in the burst phase")
    ap.add_argument("--steps", type=int, default=20, help="inference steps of the running job")
    ap.add_argument("--pause", type=float, default=0.01, help="seconds between polls")
    ap.add_argument("--job-s", type=float, default=60.0, help="seconds of polling while the job runs")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-poll-") as tmp:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {"LATENTSYNC_WEIGHTS": "demo", "LATENTSYNC_DATA_DIR": tmp, "LATENTSYNC_API_KEYS": KEY,
               "LATENTSYNC_INFERENCE_STEPS": str(args.steps), "LATENTSYNC_MAX_QUEUE": str(args.burst + 8),
               "LATENTSYNC_WARMUP": "false"}  # fmt: skip
        proc = start_server(env, port, Path(tmp) / "server.log")
        results = []
        try:
            wait_ready(base, headers=AUTH, proc=proc)
            client = httpx.Client(base_url=base, headers=AUTH, timeout=120)
            # 1. idle: a finished job (canceled right away: no GPU thread work afterwards).
            idle_job = post(client).json()["id"]
            client.delete(f"/jobs/{idle_job}")
            while client.get(f"/jobs/{idle_job}").json()["status"] not in ("canceled", "succeeded", "failed"):
                time.sleep(0.05)
            time.sleep(1.0)
            results.append(summary("idle", poll(client, idle_job, None, args.polls, args.pause)))
            # 2. while a job runs (the whole demo clip and speech).
            job = post(client).json()["id"]
            while client.get(f"/jobs/{job}").json()["status"] == "queued":
                time.sleep(0.01)
            done = threading.Event()

            def watch() -> None:
                c = httpx.Client(base_url=base, headers=AUTH, timeout=120)
                while c.get(f"/jobs/{job}").json()["status"] == "running":
                    time.sleep(0.2)
                done.set()

            threading.Thread(target=watch, daemon=True).start()
            threading.Timer(args.job_s, done.set).start()  # a sample of the job is enough
            running = poll(client, job, done, 0, args.pause)
            results.append(summary("during a job", running))
            client.delete(f"/jobs/{job}")
            # 3. a burst of concurrent uploads (the GPU thread busy with the first of them).
            burst_done = threading.Event()
            answers: list[int] = []

            def upload() -> None:
                with httpx.Client(base_url=base, headers=AUTH, timeout=300) as c:
                    answers.append(post(c).status_code)

            threads = [threading.Thread(target=upload) for _ in range(args.burst)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()

            def join() -> None:
                for t in threads:
                    t.join()
                burst_done.set()

            threading.Thread(target=join, daemon=True).start()
            burst = poll(client, idle_job, burst_done, 0, args.pause)
            took = time.perf_counter() - t0
            results.append(summary(f"burst of {args.burst} uploads", burst))
            results.append(f"  the burst: {sorted(answers)} in {took:.1f} s")
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    print("\n".join(results))


if __name__ == "__main__":
    main()
