"""The client's rules without a service: Retry-After and backoff bounds, how a resumed
download reads each answer, a job's JSON into its dataclass, and the progress lines when
tqdm is not installed."""

from __future__ import annotations

import email.utils
import subprocess
import sys
from pathlib import Path

import pytest

from latentsync_client import Job, RetryPolicy
from latentsync_client._rules import download_step, form_fields, retry_after_seconds

ROOT = Path(__file__).resolve().parent.parent


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    assert retry_after_seconds({"retry-after": "7"}) == 7.0
    now = 1_750_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert retry_after_seconds({"retry-after": date}, now=now) == 30.0
    assert retry_after_seconds({"retry-after": email.utils.formatdate(now - 5, usegmt=True)}, now=now) == 0.0
    assert retry_after_seconds({"retry-after": "soon"}) is None and retry_after_seconds({}) is None


def test_retries_are_bounded_and_back_off_exponentially_with_jitter() -> None:
    policy = RetryPolicy(retries=4, backoff_s=0.5, max_backoff_s=1.5, max_retry_after_s=60)
    for attempt, base in [(1, 0.5), (2, 1.0), (3, 1.5), (4, 1.5)]:  # 0.5 * 2**(n-1), capped at 1.5
        delays = [policy.delay(attempt, None) for _ in range(200)]
        assert all(base / 2 <= d <= base for d in delays) and len(set(delays)) > 1
    assert policy.delay(5, None) is None and policy.delay(5, 1.0) is None  # spent
    assert policy.delay(1, 60.0) == 60.0 and policy.delay(1, 61.0) is None  # too long to wait for


@pytest.mark.parametrize(
    ("status", "headers", "offset", "expected"),
    [
        (206, {"content-range": "bytes 100-999/1000"}, 100, ("write", True, 1000)),
        (206, {"content-range": "bytes 0-999/1000"}, 100, ("restart", False, None)),  # not what was asked
        (200, {"content-length": "1000"}, 100, ("write", False, 1000)),  # Range ignored: start over
        (200, {"content-length": "1000"}, 0, ("write", False, 1000)),
        (416, {"content-range": "bytes */1000"}, 1000, ("done", False, 1000)),  # already whole
        (416, {"content-range": "bytes */1000"}, 1200, ("restart", False, None)),  # a longer, other file
        (409, {}, 0, ("error", False, None)),
    ],
)
def test_each_answer_to_a_ranged_download(status: int, headers: dict, offset: int, expected: tuple) -> None:
    step = download_step(status, headers, offset)
    assert (step.action, step.append, step.total) == expected


def test_a_jobs_json_with_fields_this_client_does_not_know() -> None:
    job = Job.from_json(
        {
            "id": "j1",
            "status": "failed",
            "progress": 0.4,
            "error": {"code": "NO_FACE", "message": "no face"},
            "track": {"id": 2},
            "stream_url": "/jobs/j1/stream",
        }
    )
    assert job.finished and not job.succeeded and job.error.code == "NO_FACE" and job.progress == 0.4
    assert job.raw["stream_url"] == "/jobs/j1/stream" and job.frames_total == 0
    assert form_fields({"seed": 3, "enable_deepcache": True, "webhook_url": None}) == {
        "seed": "3",
        "enable_deepcache": "true",
    }


def test_progress_without_tqdm_prints_a_line_per_change() -> None:
    script = (
        "import sys; sys.modules['tqdm'] = None\n"  # as if it were not installed
        "from latentsync_client import Job\n"
        "from latentsync_client.progress import JobProgress\n"
        "p = JobProgress(sys.stdout)\n"
        "for raw in [dict(status='queued', queue_position=2), dict(status='queued', queue_position=2),\n"
        "            dict(status='running', stage='denoise', progress=0.5, eta_seconds=12.0, frames_done=13,\n"
        "                 frames_total=27), dict(status='succeeded', stage='done', progress=1.0)]:\n"
        "    p.update(Job(id='0123456789abcdef', **raw))\n"
        "p.close()\n"
    )
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "01234567 queued 0% queue=2",
        "01234567 denoise 50% eta=12s frames=13/27",
        "01234567 succeeded 100%",
    ]
