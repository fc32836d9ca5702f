"""The soak harness (issue 22): a seeded random mix of client traffic and faults against a real
deployment (``tests/soak_services.py``), then the invariants every deployment must keep.

Used by the CI form (``tests/test_soak.py``) and the long form (``scripts/bench_soak.py``).
The actions run one after the other from one thread, so a seed gives the same plan every time
(the service's own timing still varies: which job a kill finds running is not fixed).

At the end: every accepted job is in a terminal state exactly once (listed once, and one end
event: a job that ended twice would send two event ids); every ended job's webhook arrived,
signed, with the stable id ``evt_<job>_<status>``; no job folder outside the live jobs and no
inputs or scratch left in an ended job's folder; after deleting every job the data folder
holds what it held at the baseline.
"""

from __future__ import annotations

import json
import random
import socket
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from latentsync_client import WebhookVerificationError, verify_webhook
from tests import small_disk
from tests.server_helpers import KEY
from tests.soak_services import Service

SECRET = "whsec_c29hay10ZXN0LXNlY3JldC1mb3ItaXNzdWUtMjI="
TERMINAL = {"succeeded", "failed", "canceled"}
TRAFFIC = {"upload": 4, "poll": 6, "cancel": 1, "delete": 1.5, "slow_upload": 0.5, "idle_upload": 0.5}
# The settings the soak runs the service with (besides the mode's own).
# Housekeeping every 5 s: it re-sends the events a killed worker owed (``owed_webhooks.py``).
SETTINGS = {"webhook_secret": SECRET, "webhook_allow_hosts": "127.0.0.1", "webhook_retries": 4,
            "body_idle_s": 1.5, "min_free_mb": 4, "max_queue": 4, "cleanup_interval_s": 5}  # fmt: skip
MB = 1 << 20


class WebhookReceiver:
    """A loopback receiver that checks each delivery's signature and keeps (event id, job id,
    status) of the good ones; bad ones are counted."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []
        self.bad = 0
        self.fail_next = 0  # answer this many deliveries 503 (the sender retries them)
        self.failed = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.fail_next > 0:
                    outer.fail_next -= 1
                    outer.failed += 1
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                try:
                    event = verify_webhook(SECRET, dict(self.headers.items()), body)
                    job = json.loads(body)["job"]
                    outer.events.append((event, job["id"], job["status"]))
                except (WebhookVerificationError, ValueError, KeyError):
                    outer.bad += 1
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Ledger:
    """What the client side saw: the jobs it got a 202 for and what happened to them."""

    accepted: dict[str, str] = field(default_factory=dict)  # id -> last status seen
    deleted: set[str] = field(default_factory=set)
    refused: Counter = field(default_factory=Counter)  # error code of a refused upload
    actions: Counter = field(default_factory=Counter)
    faults: Counter = field(default_factory=Counter)
    poll_ms: list[float] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def live(self) -> list[str]:
        return [j for j in self.accepted if j not in self.deleted]


def make_plan(seed: int, steps: int, faults: list[str], traffic: dict[str, float] = TRAFFIC) -> list[str]:
    """``steps`` traffic actions drawn by weight, with each fault placed once at a random step
    (never the first few: there must be jobs for a fault to hit)."""
    rng = random.Random(seed)
    plan = rng.choices(list(traffic), weights=list(traffic.values()), k=steps)
    plan[0] = "upload"
    for fault in faults:
        plan.insert(rng.randint(3, len(plan)), fault)
    return plan


def _multipart(video: Path, audio: Path, fields: dict[str, str]) -> tuple[str, bytes]:
    boundary = f"soak{random.getrandbits(64):016x}"
    out = b""
    for name, value in fields.items():
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    for name, path in (("video", video), ("audio", audio)):
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{path.name}"\r\n'
        out += head.encode() + b"Content-Type: application/octet-stream\r\n\r\n" + path.read_bytes() + b"\r\n"
    return boundary, out + f"--{boundary}--\r\n".encode()


class Soak:
    def __init__(self, service: Service, inputs: dict[str, Path], seed: int, receiver: WebhookReceiver):
        self.service, self.inputs, self.receiver = service, inputs, receiver
        self.rng = random.Random(seed ^ 0x5EED)
        self.ledger = Ledger()
        self.baseline: dict[str, int] = {}
        self.baseline_used = 0
        self.timeline: list[tuple[str, float]] = []  # (action, seconds it took)

    @property
    def api(self) -> httpx.Client:
        return self.service.api.client

    # ---- traffic --------------------------------------------------------------------------
    def _fields(self) -> dict[str, str]:
        return {"webhook_url": self.receiver.url, "inference_steps": str(self.rng.choice([2, 3, 4]))}

    def _accepted(self, r: httpx.Response, what: str) -> None:
        if r.status_code == 202:
            self.ledger.accepted[r.json()["id"]] = r.json()["status"]
        elif r.status_code in (429, 507):  # the queue is full, the disk nearly so: refusals by design
            self.ledger.refused[r.json()["error"]["code"]] += 1
        else:
            self.ledger.unexpected.append(f"{what}: {r.status_code} {r.text[:200]}")

    def upload(self) -> None:
        answer = self.service.api.post_files(self.inputs["video"], self.inputs["audio"], **self._fields())
        self._accepted(answer, "upload")

    def slow_upload(self) -> None:
        """The same upload trickled in 8 pieces, each pause a fifth of the body-idle limit."""
        boundary, body = _multipart(self.inputs["video"], self.inputs["audio"], self._fields())
        pause = SETTINGS["body_idle_s"] / 5
        step = len(body) // 8 + 1

        def pieces() -> Iterator[bytes]:
            for i in range(0, len(body), step):
                time.sleep(pause)
                yield body[i : i + step]

        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": str(len(body))}
        self._accepted(self.api.post("/lipsync", content=pieces(), headers=headers), "slow upload")

    def idle_upload(self) -> None:
        """Headers and the first boundary, then nothing: answered 408 BODY_IDLE_TIMEOUT."""
        host, port = "127.0.0.1", self.service.api.port
        head = (f"POST /lipsync HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {KEY}\r\n"
                "Content-Type: multipart/form-data; boundary=idle\r\n"
                "Content-Length: 1000000\r\n\r\n--idle\r\n")  # fmt: skip
        with socket.create_connection((host, port), timeout=SETTINGS["body_idle_s"] + 120) as sock:
            sock.sendall(head.encode())
            answer = b""
            while b"\r\n\r\n" not in answer:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
        if answer.startswith(b"HTTP/1.1 429"):  # refused before its body was read: the queue is full
            self.ledger.refused["QUEUE_FULL"] += 1
        elif not answer.startswith(b"HTTP/1.1 408"):
            self.ledger.unexpected.append(f"idle upload: {answer[:200]!r}")

    def poll(self, job_id: str | None = None) -> dict | None:
        live = self.ledger.live()
        if job_id is None and not live:
            return None
        job_id = job_id or self.rng.choice(live)
        began = time.perf_counter()
        r = self.api.get(f"/jobs/{job_id}")
        self.ledger.poll_ms.append((time.perf_counter() - began) * 1000)
        if r.status_code != 200:
            self.ledger.unexpected.append(f"poll {job_id}: {r.status_code} {r.text[:200]}")
            return None
        self.ledger.accepted[job_id] = r.json()["status"]
        return r.json()

    def _pick(self, terminal: bool) -> str | None:
        fits = [j for j in self.ledger.live() if (self.ledger.accepted[j] in TERMINAL) == terminal]
        return self.rng.choice(fits) if fits else None

    def cancel(self) -> None:
        job_id = self._pick(terminal=False)
        if job_id is not None and (self.poll(job_id) or {}).get("status") not in TERMINAL:
            self._delete(job_id, {200, 202, 204})

    def delete(self) -> None:
        job_id = self._pick(terminal=True)
        if job_id is not None:
            self._delete(job_id, {204})

    def _delete(self, job_id: str, allowed: set[int]) -> int:
        r = self.api.delete(f"/jobs/{job_id}")
        if r.status_code not in allowed:
            self.ledger.unexpected.append(f"delete {job_id}: {r.status_code} {r.text[:200]}")
        elif r.status_code == 204:  # it had ended (the status it ended in comes from its webhook)
            self.ledger.deleted.add(job_id)
        return r.status_code

    def full_disk(self) -> None:
        """Fill the small disk to just above the free-space threshold, try an upload, let the
        running job meet it, give the space back."""
        filler = small_disk.fill(self.service.data, leave_bytes=(SETTINGS["min_free_mb"] + 1) * MB, name="soak-filler")
        try:
            self.upload()
            time.sleep(1.0)
        finally:
            filler.unlink()

    def sigterm_webhook_pending(self) -> None:
        """Every job that has not ended is canceled, the first attempt of each end webhook is
        answered 503, and the (now idle, so quickly stopping) service gets SIGTERM while the
        retries wait their second: the retries must still be delivered."""
        self.upload()
        pending = [j for j in self.ledger.live() if self.ledger.accepted[j] not in TERMINAL]
        failed = self.receiver.failed
        self.receiver.fail_next = 1000
        ending = sum(self._delete(job_id, {200, 202, 204}) != 204 for job_id in pending)
        self.wait_all(timeout=300)
        deadline = time.time() + 60
        while self.receiver.failed - failed < ending and time.time() < deadline:
            time.sleep(0.05)
        self.receiver.fail_next = 0
        self.service.inject("sigterm_api")

    # ---- the run --------------------------------------------------------------------------
    def warm_up(self) -> None:
        """One job through (weights and template cache built), deleted; then the baseline."""
        self.upload()
        (job_id,) = self.ledger.accepted
        self.wait_all(timeout=300)
        self._delete(job_id, {204})
        self.baseline, self.baseline_used = self.snapshot(), self.used_bytes()

    def run(self, plan: list[str]) -> None:
        for action in plan:
            began = time.time()
            self.service.peak_rss_mb()
            if action in ("full_disk", "sigterm_webhook_pending"):
                self.ledger.faults[action] += 1
                getattr(self, action)()
            elif action in self.service.faults():
                self.ledger.faults[action] += 1
                self.service.inject(action)
            else:
                self.ledger.actions[action] += 1
                getattr(self, action)()
            self.timeline.append((action, round(time.time() - began, 1)))

    def wait_all(self, timeout: float) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            pending = [j for j in self.ledger.live() if self.ledger.accepted[j] not in TERMINAL]
            if not pending:
                return
            for job_id in pending:
                self.poll(job_id)
            time.sleep(0.3)
        raise TimeoutError(f"jobs not terminal after {timeout} s: {pending}")

    def listed(self) -> list[dict]:
        jobs, offset = [], 0
        while True:
            page = self.api.get("/jobs", params={"limit": 500, "offset": offset}).json()
            jobs += page["jobs"]
            offset += len(page["jobs"])
            if not page["jobs"] or offset >= page["total"]:
                return jobs

    # ---- the invariants -------------------------------------------------------------------
    def check(self, webhook_timeout: float = 75.0) -> list[str]:
        """Every broken invariant, in words (empty: all kept). Deletes every job at the end.
        ``webhook_timeout``: above the worst case with the soak's settings: a worker killed
        mid-delivery (4 attempts of at most 10 s, 1 + 2 + 4 s apart: 47 s), then the next
        housekeeping pass (5 s) re-sends it."""
        problems = [f"unexpected answer: {u}" for u in self.ledger.unexpected]
        listed = self.listed()
        ids = [j["id"] for j in listed]
        problems += [f"{j} listed {n} times" for j, n in Counter(ids).items() if n > 1]
        problems += [f"{j['id']} listed as {j['status']}" for j in listed if j["status"] not in TERMINAL]
        problems += [f"accepted job {j} lost" for j in self.ledger.live() if j not in ids]
        problems += [f"job {j} never accepted is listed" for j in ids if j not in self.ledger.accepted]
        final = {j["id"]: j["status"] for j in listed}
        problems += self._check_webhooks(final, webhook_timeout)
        problems += self._check_folders(set(ids))
        before = len(self.ledger.unexpected)
        for job_id in ids:
            self._delete(job_id, {204})
        problems += [f"unexpected answer: {u}" for u in self.ledger.unexpected[before:]]
        problems += self._check_baseline()
        return problems

    def _check_webhooks(self, final: dict[str, str], timeout: float) -> list[str]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            seen = {e for e, _, _ in self.receiver.events}
            missing = [j for j, s in final.items() if f"evt_{j}_{s}" not in seen]
            missing += [j for j in self.ledger.deleted if not any(job == j for _, job, _ in self.receiver.events)]
            if not missing:
                break
            time.sleep(0.5)
        problems = [f"no webhook for job {j} ({final.get(j, 'deleted')})" for j in missing]
        per_job: dict[str, set[str]] = {}
        for event, job_id, status in self.receiver.events:
            per_job.setdefault(job_id, set()).add(event)
            if event != f"evt_{job_id}_{status}":
                problems.append(f"event id {event} for job {job_id} {status}")
        problems += [f"job {j} ended more than once: {sorted(e)}" for j, e in per_job.items() if len(e) > 1]
        problems += [f"{self.receiver.bad} webhook deliveries failed verification"] if self.receiver.bad else []
        return problems

    def _check_folders(self, live: set[str]) -> list[str]:
        problems = []
        for folder in (self.service.data / "jobs").iterdir():
            if folder.name not in live:
                problems.append(f"job folder {folder.name} outside the live jobs")
                continue
            extra = {p.name for p in folder.iterdir()} - {"job.json", "result.mp4"}
            if extra:  # an ended job keeps its record and result only
                problems.append(f"ended job {folder.name} keeps {sorted(extra)}")
        return problems

    def snapshot(self) -> dict[str, int]:
        """Every file in the data folder with its size, but the database and the job folders."""
        root = self.service.data
        return {
            str(p.relative_to(root)): p.stat().st_size
            for p in root.rglob("*")
            if p.is_file() and not p.name.startswith("jobs.sqlite3") and p.relative_to(root).parts[0] != "jobs"
        }

    def used_bytes(self) -> int:
        disk = getattr(self.service, "disk", None)
        return disk.used_bytes() if disk is not None else 0

    def _database_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.service.data.glob("jobs.sqlite3*"))

    def _check_baseline(self) -> list[str]:
        problems = []
        left = [p.name for p in (self.service.data / "jobs").iterdir()]
        problems += [f"job folders left after deleting every job: {left}"] if left else []
        now = self.snapshot()
        changed = {k: (self.baseline.get(k), v) for k, v in now.items() if self.baseline.get(k) != v}
        changed |= {k: (v, None) for k, v in self.baseline.items() if k not in now}
        problems += [f"data folder differs from its baseline: {changed}"] if changed else []
        if self.baseline_used:
            # The database may have grown (pages are not given back); nothing else may.
            grown = self.used_bytes() - self.baseline_used
            allowed = self._database_bytes() + 4 * 4096
            if grown > allowed:
                problems.append(f"disk use grew {grown} B over the baseline (database and page slack: {allowed} B)")
        return problems

    # ---- the figures ----------------------------------------------------------------------
    def figures(self) -> dict:
        polls = sorted(self.ledger.poll_ms)
        finals = Counter(status for _, status in {(job, status) for _, job, status in self.receiver.events})
        return {
            "jobs_accepted": len(self.ledger.accepted),
            "jobs_by_end": dict(finals),
            "uploads_refused": dict(self.ledger.refused),
            "actions": dict(self.ledger.actions),
            "faults": dict(self.ledger.faults),
            "polls": len(polls),
            "poll_p50_ms": round(statistics.median(polls), 1) if polls else None,
            "poll_p99_ms": round(polls[min(len(polls) - 1, int(len(polls) * 0.99))], 1) if polls else None,
            "webhook_deliveries": len(self.receiver.events),
            "api_peak_rss_mb": round(self.service.peak_rss_mb(), 1),
        }
