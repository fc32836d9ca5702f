"""What the sync and async clients share: no I/O here, only the rules (which answers are
retried and after how long, how an error body becomes an exception, how a submission's
form is built, how a resumed download is continued). Both clients only add the waiting
and the sockets."""

from __future__ import annotations

import email.utils
import hashlib
import os
import random
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from latentsync_client._version import __version__
from latentsync_client.errors import APIError, LatentSyncError, api_error
from latentsync_client.models import Job

__all__ = ["RetryPolicy", "Media", "JobRef"]

Media = str | os.PathLike | IO[bytes]  # a path, or a binary file object (rewound on retries when seekable)
JobRef = str | Job

RETRY_STATUSES = frozenset({429, 503})
UPLOAD_READ_TIMEOUT_S = 300.0  # the service probes the media before it answers a submission
# Connection errors only: the request did not get a complete answer. A read timeout is not
# retried (the service may still be working on it; the caller chose the timeout).
CONNECTION_ERRORS: tuple[type[Exception], ...] = (httpx.NetworkError, httpx.ConnectTimeout, httpx.RemoteProtocolError)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries of connection errors, 429 and 503 (nothing else is retried).

    The n-th retry waits the service's ``Retry-After`` when it sent one, else
    ``backoff_s * 2**n`` with jitter, at most ``max_backoff_s``. A ``Retry-After`` longer than
    ``max_retry_after_s`` is not waited for: the error is raised at once, so the caller decides.
    """

    retries: int = 4
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    max_retry_after_s: float = 120.0

    def delay(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds to wait before retry number ``attempt`` (1-based), or None: give up."""
        if attempt > self.retries:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after_s else None
        base = min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s)
        return base / 2 + random.uniform(0, base / 2)  # jitter: many clients do not retry in step


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """``Retry-After`` as seconds (delay-seconds or an HTTP date, RFC 9110 10.2.3), or None."""
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def error_from_response(resp: httpx.Response) -> APIError:
    """The API's ``{"error": {"code", "message"}}`` as an exception (the body must be read)."""
    code, message = f"HTTP_{resp.status_code}", resp.reason_phrase or "error"
    try:
        detail = resp.json().get("error")
        if isinstance(detail, dict):
            code = str(detail.get("code") or code)
            message = str(detail.get("message") or message)
    except (ValueError, AttributeError):
        text = resp.text.strip()
        if text:
            message = text[:500]
    return api_error(resp.status_code, code, message, resp.headers)


def job_from_response(resp: httpx.Response) -> Job:
    try:
        return Job.from_json(resp.json())
    except (ValueError, TypeError) as exc:
        message = f"the service's answer is not a job: {exc}"
        raise LatentSyncError("INVALID_RESPONSE", message, resp.status_code) from exc


def default_headers(api_key: str | None) -> dict[str, str]:
    headers = {"User-Agent": f"latentsync-client/{__version__}", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def upload_timeout(t: httpx.Timeout) -> httpx.Timeout:
    """The client's timeouts with a read timeout long enough for the service's media checks."""
    return httpx.Timeout(connect=t.connect, read=max(t.read or 0, UPLOAD_READ_TIMEOUT_S), write=t.write, pool=t.pool)


def path_body(video_path: str, audio_path: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON form of a submission (files already in an allowed input folder)."""
    return {"video_path": video_path, "audio_path": audio_path, **{k: v for k, v in params.items() if v is not None}}


def job_id(job: JobRef) -> str:
    return job.id if isinstance(job, Job) else str(job)


def new_idempotency_key() -> str:
    return uuid.uuid4().hex


def submit_headers(key: str) -> dict[str, str]:
    """The Idempotency-Key, and a multipart boundary fixed by it: a retry sends the same
    bytes as the first attempt (httpx would draw a new random boundary each time)."""
    boundary = "latentsync-" + hashlib.sha256(key.encode()).hexdigest()[:32]
    return {"Idempotency-Key": key, "Content-Type": f"multipart/form-data; boundary={boundary}"}


def form_fields(params: Mapping[str, Any]) -> dict[str, str]:
    """Job parameters as multipart form fields (unset ones left out)."""
    out: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


class OpenedMedia:
    """The files of one submission attempt: paths are opened for it, file objects are
    rewound to where they stood at the first attempt (a retry sends the same bytes)."""

    def __init__(self, named: Mapping[str, Media]):
        self._named = dict(named)
        self._starts: dict[str, int | None] = {}
        for name, media in self._named.items():
            if not isinstance(media, (str, os.PathLike)):
                try:
                    self._starts[name] = media.tell() if media.seekable() else None
                except (AttributeError, OSError):
                    self._starts[name] = None
        self._opened: list[IO[bytes]] = []
        self.attempts = 0

    def open(self) -> dict[str, tuple[str, IO[bytes], str]]:
        self.close()
        self.attempts += 1
        files = {}
        for name, media in self._named.items():
            if isinstance(media, (str, os.PathLike)):
                path = Path(media)
                handle: IO[bytes] = open(path, "rb")  # noqa: SIM115 (closed by close())
                self._opened.append(handle)
                filename = path.name
            else:
                handle = media
                if self.attempts > 1:
                    start = self._starts[name]
                    if start is None:
                        raise LatentSyncError("NOT_REWINDABLE", f"cannot retry: the '{name}' file object cannot seek")
                    handle.seek(start)
                filename = Path(str(getattr(media, "name", name))).name
            files[name] = (filename, handle, "application/octet-stream")
        return files

    def close(self) -> None:
        for handle in self._opened:
            handle.close()
        self._opened.clear()


_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)")


@dataclass(frozen=True)
class DownloadStep:
    """What to do with an answer to ``GET .../result`` sent with ``Range: bytes=offset-``."""

    action: str  # "write" (body to the file), "done" (the part file is already whole), "restart", "error"
    append: bool = False
    total: int | None = None  # the whole file's size, when the answer tells it


def download_step(status: int, headers: Mapping[str, str], offset: int) -> DownloadStep:
    match = _CONTENT_RANGE.match(headers.get("content-range", ""))
    total = int(match.group(3)) if match and match.group(3) != "*" else None
    if status == 206 and match and match.group(1) is not None:
        if int(match.group(1)) != offset:  # not the continuation asked for
            return DownloadStep("restart")
        return DownloadStep("write", append=True, total=total)
    if status == 200:  # the whole file (no Range sent, or the service ignored it)
        length = headers.get("content-length")
        return DownloadStep("write", append=False, total=int(length) if length and length.isdigit() else None)
    if status == 416 and offset > 0:  # nothing left from offset: whole if the sizes agree
        return DownloadStep("done", total=total) if total == offset else DownloadStep("restart")
    return DownloadStep("error")


def part_path(dest: Path, job: str) -> Path:
    """Where a download grows until it is whole (then renamed to ``dest``). The job's id is in
    the name: a broken download of another job to the same ``dest`` is never continued."""
    return dest.with_name(f"{dest.name}.{job}.part")


def next_poll_delay(job: Job, previous: float, first: float, most: float) -> float:
    """Polls slow down geometrically up to ``most``; a job about to finish is polled sooner."""
    delay = first if previous <= 0 else min(previous * 1.5, most)
    if job.eta_seconds is not None and job.eta_seconds >= 0:
        delay = min(delay, max(first, job.eta_seconds / 2))
    return delay


def finish_download(part: Path, dest: Path, step: DownloadStep, url: str) -> Path:
    """Check the part file has the size the service announced, then move it into place."""
    size = part.stat().st_size if part.exists() else 0
    if step.total is not None and size != step.total:
        raise LatentSyncError("DOWNLOAD_INCOMPLETE", f"got {size} of {step.total} bytes of {url}")
    os.replace(part, dest)
    return dest
