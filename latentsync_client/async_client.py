"""The asyncio client: the same calls as :class:`~latentsync_client.client.Client`, awaited.

Uploads read the local files in 64 KiB blocks on the event loop (httpx's multipart stream);
local disk reads that small do not stall a loop noticeably."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from latentsync_client._rules import (
    CONNECTION_ERRORS,
    RETRY_STATUSES,
    DownloadStep,
    JobRef,
    Media,
    OpenedMedia,
    RetryPolicy,
    default_headers,
    download_step,
    error_from_response,
    finish_download,
    form_fields,
    job_from_response,
    job_id,
    new_idempotency_key,
    next_poll_delay,
    part_path,
    path_body,
    retry_after_seconds,
    submit_headers,
    upload_timeout,
)
from latentsync_client.errors import APIError, LatentSyncError, TransportError, WaitTimeout
from latentsync_client.models import FaceTracks, Job, JobList
from latentsync_client.progress import JobProgress


class AsyncClient:
    """``async with AsyncClient(url, api_key=...) as client: job = await client.submit(...)``."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        poll_interval: tuple[float, float] = (0.5, 5.0),
        headers: Mapping[str, str] | None = None,
    ):
        self.retry = retry or RetryPolicy()
        self.poll_interval = poll_interval
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            headers={**default_headers(api_key), **(headers or {})},
            follow_redirects=False,
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(
        self, method: str, url: str, prepare: Callable[[], dict[str, Any]] | None = None, **kw: Any
    ) -> httpx.Response:
        attempt = 0
        while True:
            attempt += 1
            try:
                resp = await self._http.request(method, url, **kw, **(prepare() if prepare else {}))
            except CONNECTION_ERRORS as exc:
                delay = self.retry.delay(attempt, None)
                if delay is None:
                    raise TransportError(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
                await asyncio.sleep(delay)
                continue
            if resp.status_code < 400:
                return resp
            if resp.status_code in RETRY_STATUSES:
                delay = self.retry.delay(attempt, retry_after_seconds(resp.headers))
                if delay is not None:
                    await asyncio.sleep(delay)
                    continue
            raise error_from_response(resp)

    async def submit(self, video: Media, audio: Media, *, idempotency_key: str | None = None, **params: Any) -> Job:
        key = idempotency_key or new_idempotency_key()
        media = OpenedMedia({"video": video, "audio": audio})
        data = form_fields(params)
        try:
            resp = await self._send(
                "POST",
                "/lipsync",
                prepare=lambda: {"files": media.open(), "data": data},
                headers=submit_headers(key),
                timeout=upload_timeout(self._http.timeout),
            )
        finally:
            media.close()
        return job_from_response(resp)

    async def submit_paths(
        self, video_path: str, audio_path: str, *, idempotency_key: str | None = None, **params: Any
    ) -> Job:
        body = path_body(video_path, audio_path, params)
        headers = {"Idempotency-Key": idempotency_key or new_idempotency_key()}
        return job_from_response(await self._send("POST", "/lipsync", json=body, headers=headers))

    async def get(self, job: JobRef) -> Job:
        return job_from_response(await self._send("GET", f"/jobs/{job_id(job)}"))

    async def jobs(self, status: str | None = None, limit: int = 50, offset: int = 0) -> JobList:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status
        return JobList.from_json((await self._send("GET", "/jobs", params=params)).json())

    async def cancel(self, job: JobRef) -> Job:
        current = await self.get(job)
        # (A job that finishes between this check and the DELETE is removed by it: the API
        # has one DELETE for both; a cancel-only route would close that window.)
        if current.finished:
            return current
        return job_from_response(await self._send("DELETE", f"/jobs/{current.id}"))

    async def delete(self, job: JobRef, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            resp = await self._send("DELETE", f"/jobs/{job_id(job)}")
            if resp.status_code == 204:
                return
            if time.monotonic() > deadline:
                raise WaitTimeout(f"job {job_id(job)} did not stop within {timeout} s", job_from_response(resp))
            if resp.status_code == 202:
                await asyncio.sleep(self.poll_interval[0])

    async def wait(self, job: JobRef, timeout: float | None = None, progress: bool = False) -> Job:
        deadline = None if timeout is None else time.monotonic() + timeout
        bar = JobProgress() if progress else None
        delay = 0.0
        try:
            while True:
                current = await self.get(job)
                if bar:
                    bar.update(current)
                if current.finished:
                    return current
                delay = next_poll_delay(current, delay, *self.poll_interval)
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise WaitTimeout(f"job {current.id} is still {current.status} after {timeout} s", current)
                    delay = min(delay, remaining)
                await asyncio.sleep(delay)
        finally:
            if bar:
                bar.close()

    async def result(self, job: JobRef, path: str | os.PathLike) -> Path:
        dest = Path(path)
        part = part_path(dest, job_id(job))
        url = f"/jobs/{job_id(job)}/result"
        failures = 0
        while True:
            offset = part.stat().st_size if part.exists() else 0
            try:
                step = await self._download_once(url, part, offset)
            except CONNECTION_ERRORS as exc:
                grew = part.exists() and part.stat().st_size > offset
                failures = 1 if grew else failures + 1
                delay = self.retry.delay(failures, None)
                if delay is None:
                    raise TransportError(f"GET {url}: {type(exc).__name__}: {exc}") from exc
                await asyncio.sleep(delay)
                continue
            except APIError as exc:
                failures += 1
                delay = self.retry.delay(failures, retry_after_seconds(exc.headers))
                if exc.status not in RETRY_STATUSES or delay is None:
                    raise
                await asyncio.sleep(delay)
                continue
            if step.action == "restart":
                part.unlink(missing_ok=True)
                continue
            return finish_download(part, dest, step, url)

    async def _download_once(self, url: str, part: Path, offset: int) -> DownloadStep:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        async with self._http.stream("GET", url, headers=headers) as resp:
            step = download_step(resp.status_code, resp.headers, offset)
            if step.action == "error":
                await resp.aread()
                raise error_from_response(resp)
            if step.action == "write":
                with open(part, "ab" if step.append else "wb") as out:
                    async for chunk in resp.aiter_bytes():
                        out.write(chunk)
        return step

    async def faces(self, video: Media | None = None, *, video_path: str | None = None, **params: Any) -> FaceTracks:
        if (video is None) == (video_path is None):
            raise ValueError("give exactly one of video and video_path")
        if video_path is not None:
            resp = await self._send("POST", "/faces", json={"video_path": video_path, **params})
        else:
            media = OpenedMedia({"video": video})
            try:
                resp = await self._send(
                    "POST",
                    "/faces",
                    prepare=lambda: {"files": media.open(), "data": form_fields(params)},
                    timeout=upload_timeout(self._http.timeout),
                )
            finally:
                media.close()
        try:
            return FaceTracks.from_json(resp.json())
        except ValueError as exc:
            raise LatentSyncError("INVALID_RESPONSE", f"POST /faces answered no JSON: {exc}", resp.status_code) from exc
