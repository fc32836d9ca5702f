"""Service latency benchmark: poll latency while a job runs, and POST-to-start time.

Starts the real service (demo weights, CPU unless LATENTSYNC_DEVICE says otherwise),
submits a job and polls GET /jobs/<id> as fast as it can while the worker is busy.

    .venv/bin/python -m scripts.bench_service [--polls 500]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from server.client_util import ROOT, free_port, start_server, wait_ready


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--polls", type=int, default=500)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--interval", type=float, default=0.03, help="pause between polls (s), to span every stage")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-svc-") as tmp:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {"LATENTSYNC_WEIGHTS": "demo", "LATENTSYNC_DATA_DIR": tmp, "LATENTSYNC_INFERENCE_STEPS": str(args.steps)}
        proc = start_server(env, port, Path(tmp) / "server.log")
        try:
            wait_ready(base, proc=proc)
            client = httpx.Client(base_url=base, timeout=30)
            video, audio = ROOT / "assets" / "demo1_video.mp4", ROOT / "assets" / "demo1_audio.wav"
            starts = []
            for _ in range(3):  # POST -> running on an idle server
                with open(video, "rb") as v, open(audio, "rb") as a:
                    t0 = time.perf_counter()
                    job = client.post("/lipsync", files={"video": v, "audio": a}).json()
                    posted = time.perf_counter()
                while client.get(f"/jobs/{job['id']}").json()["status"] == "queued":
                    pass
                starts.append((posted - t0, time.perf_counter() - t0))
                client.delete(f"/jobs/{job['id']}")
                while client.get(f"/jobs/{job['id']}").json()["status"] == "running":
                    time.sleep(0.05)
            with open(video, "rb") as v, open(audio, "rb") as a:
                job = client.post("/lipsync", files={"video": v, "audio": a}).json()
            while client.get(f"/jobs/{job['id']}").json()["status"] != "running":
                time.sleep(0.01)
            latencies = []
            stages = set()
            for _ in range(args.polls):
                t0 = time.perf_counter()
                body = client.get(f"/jobs/{job['id']}").json()
                latencies.append((time.perf_counter() - t0) * 1000)
                stages.add(body["stage"])
                if body["status"] != "running":
                    break
                time.sleep(args.interval)
            client.delete(f"/jobs/{job['id']}")
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"poll latency while a job runs ({len(latencies)} polls, stages seen {sorted(s for s in stages if s)}):")
    print(f"  median {statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms, max {latencies[-1]:.1f} ms")
    for upload, start in starts:
        print(f"POST answered in {upload * 1000:.0f} ms (upload + probe); job running {start * 1000:.0f} ms after POST")


if __name__ == "__main__":
    main()
