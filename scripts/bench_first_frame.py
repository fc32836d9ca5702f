"""Time to the first playable frame: from a job's submission, and from its start,
to the moment ``GET /jobs/{id}/stream`` has delivered a complete media fragment (an
initialization segment plus one ``moof``/``mdat``: what a player needs to show a picture).

Starts the real service (weights and device from the usual settings: ``LATENTSYNC_WEIGHTS``,
``LATENTSYNC_DEVICE``; demo weights on the CPU by default), warms it with one job, then runs
``--jobs`` jobs one after another on the idle, warm service and prints, per job and as
medians: POST answered, job started (its record's ``started_at``), first stream byte, first
playable fragment, and the job's end. The streamed bytes are decoded (ffmpeg) to count their frames.

    .venv/bin/python -m scripts.bench_first_frame [--jobs 3] [--steps 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from latentsync_core.media.ffmpeg_bin import input_arg, run_ffmpeg
from latentsync_core.media.live_mp4 import complete_fragments
from server.client_util import ROOT, free_port, start_server, wait_ready


def one_job(client: httpx.Client, video: Path, audio: Path, steps: int, folder: Path) -> dict[str, float]:
    with open(video, "rb") as v, open(audio, "rb") as a:
        t0 = time.time()
        job = client.post("/lipsync", files={"video": v, "audio": a}, data={"inference_steps": str(steps)}).json()
    marks = {"posted": time.time() - t0}
    data = bytearray()
    with client.stream("GET", f"/jobs/{job['id']}/stream", timeout=600) as resp:
        resp.raise_for_status()
        for chunk in resp.iter_bytes():
            if not data:
                marks["first_byte"] = time.time() - t0
            data += chunk
            if "playable" not in marks and complete_fragments(bytes(data)) >= 1:
                marks["playable"] = time.time() - t0
    marks["ended"] = time.time() - t0
    record = client.get(f"/jobs/{job['id']}").json()
    assert record["status"] == "succeeded", record
    marks["started"] = record["started_at"] - t0
    marks["playable_after_start"] = marks["playable"] - marks["started"]
    snapshot = folder / f"{job['id']}.mp4"
    snapshot.write_bytes(bytes(data))
    marks["frames_streamed"] = float(_frames(snapshot))
    marks["frames"] = float(record["result"]["frames"])
    return marks


def _frames(path: Path) -> int:
    """Video frames that decode from ``path`` (one framemd5 line each)."""
    out = run_ffmpeg(["-v", "error", "-i", input_arg(path), "-map", "0:v:0", "-f", "framemd5", "-"])
    return sum(1 for line in out.stdout.decode().splitlines() if line and not line.startswith("#"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--video", type=Path, default=ROOT / "assets" / "demo1_video.mp4")
    ap.add_argument("--audio", type=Path, default=ROOT / "assets" / "demo1_audio.wav")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-first-frame-") as tmp:
        folder, port = Path(tmp), free_port()
        env = {"LATENTSYNC_WEIGHTS": os.environ.get("LATENTSYNC_WEIGHTS", "demo"), "LATENTSYNC_DATA_DIR": tmp,
               "LATENTSYNC_LIVE_STREAM": "true"}  # fmt: skip
        proc = start_server(env, port, folder / "server.log")
        try:
            base = f"http://127.0.0.1:{port}"
            wait_ready(base, proc=proc)
            client = httpx.Client(base_url=base, timeout=60)
            one_job(client, args.video, args.audio, args.steps, folder)  # warm-up: not counted
            runs = [one_job(client, args.video, args.audio, args.steps, folder) for _ in range(args.jobs)]
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    keys = ["posted", "started", "first_byte", "playable", "playable_after_start", "ended"]
    print(f"{'job':>4} " + " ".join(f"{k:>21}" for k in keys) + "   frames streamed/result")
    for i, r in enumerate(runs):
        streamed = f"{r['frames_streamed']:.0f}/{r['frames']:.0f}"
        print(f"{i:>4} " + " ".join(f"{r[k]:>20.2f}s" for k in keys) + f"   {streamed}")
    medians = {k: statistics.median(r[k] for r in runs) for k in keys}
    print("median " + " ".join(f"{k}={v:.2f}s" for k, v in medians.items()))
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "median": medians, "steps": args.steps}, indent=2))


if __name__ == "__main__":
    main()
