"""`make demo`: start the service in demo mode, lip-sync the bundled clip, print the result path.

Runs the real service (a separate process on a loopback port, SQLite job store, GPU worker
thread) exactly as a backend would use it: POST /lipsync, poll /jobs/<id>, GET the result.
"""

from __future__ import annotations

import os
import sys
import time

import httpx

from server.client_util import ROOT, free_port, start_server, wait_ready


def main() -> int:
    data = ROOT / "data" / "demo"
    out_dir = ROOT / "out"
    out_dir.mkdir(exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"LATENTSYNC_WEIGHTS": os.environ.get("LATENTSYNC_WEIGHTS", "demo"), "LATENTSYNC_DATA_DIR": str(data)}
    data.mkdir(parents=True, exist_ok=True)
    log_path = data / "server.log"
    print(f"starting the service on {base} (log: {log_path})")
    proc = start_server(env, port, log_path)
    try:
        info = wait_ready(base, proc=proc)
        print(f"ready: device={info['device']} weights={info['weights']} ({info.get('notice', '')})")
        with open(ROOT / "assets" / "demo1_video.mp4", "rb") as v, open(ROOT / "assets" / "demo1_audio.wav", "rb") as a:
            r = httpx.post(
                f"{base}/lipsync",
                files={"video": ("demo1_video.mp4", v, "video/mp4"), "audio": ("demo1_audio.wav", a, "audio/wav")},
                timeout=120,
            )
        if r.status_code != 202:
            print(f"submit failed: {r.status_code} {r.text}", file=sys.stderr)
            return 1
        job = r.json()
        print(f"job {job['id']} queued")
        last = ""
        while job["status"] in ("queued", "running"):
            time.sleep(1.0)
            job = httpx.get(f"{base}/jobs/{job['id']}", timeout=10).json()
            line = f"  {job['status']:>9} {job['stage'] or '':>8} {job['progress'] * 100:5.1f}%"
            if job["frames_total"]:
                line += f"  frames {job['frames_done']}/{job['frames_total']}"
            if job["eta_seconds"] is not None:
                line += f"  eta {job['eta_seconds']:.0f} s"
            if line != last:
                print(line, flush=True)
                last = line
        if job["status"] != "succeeded":
            print(f"job {job['status']}: {job['error']}", file=sys.stderr)
            return 1
        out = out_dir / "demo_lipsync.mp4"
        with httpx.stream("GET", f"{base}{job['result_url']}", timeout=60) as resp, open(out, "wb") as f:
            for chunk in resp.iter_bytes():
                f.write(chunk)
        print(f"result: {out}")
        sync = (job.get("result") or {}).get("sync")
        if sync:
            print(f"sync score of the output: offset {sync['offset_frames']:+d} frames, LSE-C {sync['lse_c']:.2f}, "
                  f"LSE-D {sync['lse_d']:.2f} ({sync['weights']} SyncNet weights)")  # fmt: skip
        if info["weights"] == "demo":
            print("NOTE: demo weights are random: the mouth shows what an untrained model makes, not lip-sync.")
        return 0
    finally:
        proc.terminate()
        proc.wait(timeout=60)


if __name__ == "__main__":
    sys.exit(main())
