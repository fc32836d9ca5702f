"""Webhooks: a POST with the finished job, retried with back-off, never blocking a job."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from dataclasses import asdict
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from server.job_store import Job

log = logging.getLogger(__name__)


class WebhookSender:
    """Sends from the event loop; ``send`` may be called from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float = 10.0, retries: int = 3):
        self._loop, self._timeout, self._retries = loop, timeout, retries
        self._tasks: set[concurrent.futures.Future] = set()

    def send(self, url: str, job: Job) -> None:
        future = asyncio.run_coroutine_threadsafe(self._post(url, payload(job)), self._loop)
        self._tasks.add(future)
        future.add_done_callback(self._tasks.discard)

    def flush(self, timeout: float) -> None:
        """Wait (from another thread than the loop's) for the webhooks in flight."""
        concurrent.futures.wait(list(self._tasks), timeout=timeout)

    async def _post(self, url: str, body: dict) -> None:
        delay = 1.0
        async with httpx.AsyncClient(timeout=self._timeout) as client:
            for attempt in range(1, self._retries + 1):
                try:
                    resp = await client.post(url, json=body)
                    if resp.status_code < 500:
                        return
                except httpx.HTTPError as exc:
                    log.warning("webhook %s attempt %d failed: %s", url, attempt, exc)
                await asyncio.sleep(delay)
                delay *= 2


def payload(job: Job) -> dict:
    """The job as its webhook shows it: no server-side paths."""
    fields = {k: v for k, v in asdict(job).items() if not k.endswith("_path") and k != "work_dir"}
    return {"event": "job.finished", "job": fields}
