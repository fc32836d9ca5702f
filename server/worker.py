"""The GPU worker: one job at a time on one device, run in a thread so the event loop stays
free. A process has one per device (``devices.py``: the pool lends idle devices to a
running job's windows).

Jobs are taken in creation order from SQLite; every status change goes through the
lifecycle (``lifecycle.py``), progress through the board (``progress.py``).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from latentsync_core.common.errors import Cancelled, CodedError
from server.job_store import Job, JobStore
from server.lifecycle import JobLifecycle, JobStatus
from server.metrics import Metrics
from server.progress import ProgressBoard
from server.storage import CODE as STORAGE_CODE
from server.storage import is_disk_full

if TYPE_CHECKING:
    from server.devices import DevicePool

log = logging.getLogger(__name__)


class GPUWorker:
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
        self.pool: DevicePool | None = None  # set by the pool; it claims and lends this device
        self.busy = False  # running its own job (the pool's lock guards busy and lent)
        self.lent = False  # running windows of another device's job
        self.pipeline: Any = None  # set once the models are loaded
        self.running_id: str | None = None
        self.seconds_per_frame: float | None = None  # running average, for ETAs of queued jobs
        self._cancel: set[str] = set()
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gpu")
        self._task: asyncio.Task | None = None
        self.stopping = False

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

    def recover(self) -> None:
        """After a restart: a job that was running runs once more, then fails INTERRUPTED."""
        for job_id in self.store.ids_with_status(JobStatus.RUNNING):
            job = self.store.get(job_id)
            if job is not None:
                self.lifecycle.interrupt(job)

    # ---- the loop -------------------------------------------------------------------------
    async def _loop(self) -> None:
        while not self.stopping:
            try:
                await self._next_job()
            except sqlite3.DatabaseError:  # /ready reports it; the loop lives on for when it is mended
                log.exception("job store unreadable; retrying in 5 s")
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
        self.running_id = job.id
        report = self.board.begin(job.id)
        lender = self.pool.lender_for(self) if self.pool is not None else None
        try:
            spf = await asyncio.get_running_loop().run_in_executor(
                self._executor, run_started_job, job, self.pipeline, self.lifecycle, self.metrics, report,
                lambda: job.id in self._cancel, lambda: self.stopping, lender,
            )  # fmt: skip
            if spf is not None:
                self.seconds_per_frame = (
                    spf if self.seconds_per_frame is None else 0.7 * self.seconds_per_frame + 0.3 * spf
                )
        finally:
            self.running_id = None
            self._cancel.discard(job.id)
            self.board.end(job.id)


def run_started_job(
    job: Job,
    pipeline: Any,
    lifecycle: JobLifecycle,
    metrics: Metrics,
    report: Any,
    should_cancel: Callable[[], bool],
    stopping: Callable[[], bool],
    lender: Any = None,
) -> float | None:
    """Run a started job to its end state (in the device's thread, here or on a Celery
    worker): succeeded, failed with a code, canceled, or back in the queue when the worker is
    stopping. Seconds per output frame when it succeeded."""
    from latentsync_core.inference.params import LipSyncParams

    started = time.time()
    work = Path(job.work_dir)
    try:
        result = pipeline.run(
            job.video_path,
            job.audio_path,
            work / "result.mp4",
            LipSyncParams(**job.params),
            progress=report,
            should_cancel=should_cancel,
            work_dir=work / "tmp",
            lender=lender,
        )
    except Cancelled:
        if stopping():
            lifecycle.requeue(job)
        else:
            lifecycle.cancel(job)
    except CodedError as exc:  # what the inputs caused: the client's to see as it is
        log.info("job %s failed: %s %s", job.id, exc.code, exc.message)
        lifecycle.fail(job, exc.code, exc.message)
    except Exception as exc:
        if is_disk_full(exc):  # not a bug: the data folder filled up (/ready says so too)
            log.error("job %s failed: the data folder is full (%s)", job.id, exc)
            shutil.rmtree(work / "tmp", ignore_errors=True)  # give back what it took
            lifecycle.fail(job, STORAGE_CODE, "the server's disk filled up while running this job")
        else:  # a bug or a broken installation: ours to look at
            log.exception("job %s failed with an internal error", job.id)
            lifecycle.fail(job, "INTERNAL", f"internal error ({type(exc).__name__}); see the service log")
    else:
        for stage, seconds in result.timings.items():
            metrics.stage_seconds.labels(stage).observe(seconds)
        if result.sync is not None:
            metrics.lse_c.observe(result.sync["lse_c"])
        info = result.to_dict()
        info.pop("output_path", None)
        lifecycle.succeed(job, str(result.output_path), info)
        return (time.time() - started) / max(result.frames, 1)
    return None
