"""A device's worker: one job at a time on one device, run in a thread so the event loop
stays free. A process has one per device; the pool (``device_pool.py``) claims them and
lends idle ones to a running job's windows.

Jobs are taken in creation order from the store; every status change goes through the
lifecycle (``server/jobs/lifecycle.py``), progress through the board (``progress.py``).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Protocol

from server.jobs.lifecycle import JobLifecycle
from server.jobs.metrics import Metrics
from server.jobs.model import Job, JobStatus
from server.jobs.progress import ProgressBoard
from server.jobs.store import JobStore, StoreUnavailable
from server.runners.run_job import run_started_job

if TYPE_CHECKING:
    from latentsync_core.inference.pipeline import LipSyncPipeline
    from latentsync_core.inference.window_split import DeviceLender

log = logging.getLogger(__name__)


class DeviceClaims(Protocol):
    """Who decides whether a worker may start a job now (the pool: a lent device may not)."""

    def claim(self, worker: DeviceWorker) -> bool: ...
    def done(self, worker: DeviceWorker) -> None: ...
    def lender_for(self, worker: DeviceWorker) -> DeviceLender | None: ...


class DeviceWorker:
    def __init__(
        self,
        store: JobStore,
        metrics: Metrics,
        lifecycle: JobLifecycle,
        board: ProgressBoard,
        name: str = "default",
        host: str = "",
    ):
        self.store, self.metrics, self.lifecycle, self.board = store, metrics, lifecycle, board
        self.name, self.host = name, host  # what job records say ran them: {"host", "device"}
        self.pool: DeviceClaims | None = None  # set by the pool; it claims and lends this device
        self.busy = False  # running its own job (the pool's lock guards busy and lent)
        self.lent = False  # running windows of another device's job
        self.pipeline: LipSyncPipeline | None = None  # set once the models are loaded
        self.running_id: str | None = None
        self.seconds_per_frame: float | None = None  # running average, for ETAs of queued jobs
        self._cancel: set[str] = set()
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gpu")
        self._task: asyncio.Task | None = None
        self.stopping = False
        self.live_stream = False  # write each job's growing stream.mp4 (the pool sets it from the settings)

    # ---- control ------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"gpu-worker-{self.name}")

    def wake(self) -> None:
        self._wake.set()

    def request_cancel(self, job_id: str) -> None:
        """Stops a running job at the next window (the pipeline polls this)."""
        self._cancel.add(job_id)

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop taking jobs; the running one is stopped and put back in the queue."""
        self.stopping = True
        if self.running_id:
            self._cancel.add(self.running_id)
        self._wake.set()
        if self._task:
            try:
                await asyncio.wait_for(self._task, timeout)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
        self._executor.shutdown(wait=True, cancel_futures=True)

    # ---- the loop -------------------------------------------------------------------------
    async def _loop(self) -> None:
        while not self.stopping:
            try:
                await self._next_job()
            except StoreUnavailable:  # /ready reports it; the loop lives on for when it is mended
                log.exception("job store unreadable; retrying in 5 s")
                await asyncio.sleep(5.0)
            except Exception:  # a bug must not stop this device for good: logged, the loop goes on
                log.exception("the device worker's loop failed; going on in 5 s")
                await asyncio.sleep(5.0)

    async def _idle(self) -> None:
        """Wait until woken (a new job, a device back) or a second has passed."""
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=1.0)
        except TimeoutError:
            pass

    async def _next_job(self) -> None:
        """Run the oldest queued job, or wait up to a second for one."""
        queued = self.store.queued_ids() if self.pipeline is not None else []
        self.metrics.queue_length.set(len(queued))
        if not queued:
            await self._idle()
            return
        job = self.store.get(queued[0])
        if job is None or job.status != JobStatus.QUEUED:
            return
        if self.pool is not None and not self.pool.claim(self):  # lent to another job's windows
            await self._idle()
            return
        try:
            await self._run(job)
        finally:
            if self.pool is not None:
                self.pool.done(self)

    async def _run(self, job: Job) -> None:
        job = self.lifecycle.start(job, worker={"host": self.host, "device": self.name})
        if self.pool is not None:
            self.pool.started(self)
        self.running_id = job.id
        report = self.board.begin(job.id)
        lender = self.pool.lender_for(self) if self.pool is not None else None
        try:

            def run() -> float | None:  # in the device's thread
                return run_started_job(
                    job,
                    self.pipeline,
                    self.lifecycle,
                    self.metrics,
                    report,
                    should_cancel=lambda: job.id in self._cancel,
                    stopping=lambda: self.stopping,
                    lender=lender,
                    live_stream=self.live_stream,
                )

            spf = await asyncio.get_running_loop().run_in_executor(self._executor, run)
            if spf is not None:
                self.seconds_per_frame = (
                    spf if self.seconds_per_frame is None else 0.7 * self.seconds_per_frame + 0.3 * spf
                )
        finally:
            self.running_id = None
            self._cancel.discard(job.id)
            self.board.end(job.id)
