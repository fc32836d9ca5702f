"""The GPU worker: one job at a time per device, run in a thread so the event loop stays free.

Jobs are taken in creation order from SQLite. Progress arrives from the worker thread
through a thread-safe callback into an in-memory snapshot (read by polls without touching
the database) and is written to SQLite at most twice a second.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from latentsync_core.pipeline import Cancelled
from server.job_store import CANCELED, FAILED, QUEUED, RUNNING, SUCCEEDED, Job, JobStore
from server.metrics import Metrics

log = logging.getLogger(__name__)

# Share of the whole job each stage stands for, for progress and ETA.
STAGE_SPAN = {"probe": (0.0, 0.01), "audio": (0.01, 0.04), "detect": (0.04, 0.15), "denoise": (0.15, 0.98),
              "encode": (0.98, 1.0)}  # fmt: skip
PERSIST_EVERY_S = 0.5


class GPUWorker:
    def __init__(self, store: JobStore, metrics: Metrics, webhook_timeout: float = 10.0, webhook_retries: int = 3):
        self.store = store
        self.metrics = metrics
        self.pipeline: Any = None  # set once the models are loaded
        self.params_type: Any = None
        self.live: dict[str, dict[str, Any]] = {}  # job id -> latest progress snapshot
        self.running_id: str | None = None
        self._cancel: set[str] = set()
        self._requeue_on_stop = False
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gpu")
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._webhook_timeout = webhook_timeout
        self._webhook_retries = webhook_retries
        self.seconds_per_frame: float | None = None  # running average, for ETAs of queued jobs

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="gpu-worker")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self, requeue_running: bool = True, timeout: float = 30.0) -> None:
        """Stop taking jobs; the running one is stopped and put back in the queue."""
        self._stopping = True
        if self.running_id and requeue_running:
            self._requeue_on_stop = True
            self._cancel.add(self.running_id)
        self._wake.set()
        if self._task:
            try:
                await asyncio.wait_for(self._task, timeout)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
        self._executor.shutdown(wait=True, cancel_futures=True)

    # ---- control ------------------------------------------------------------------------
    def request_cancel(self, job_id: str) -> None:
        self._cancel.add(job_id)

    async def _loop(self) -> None:
        while not self._stopping:
            queued = self.store.queued_ids() if self.pipeline is not None else []
            self.metrics.queue_length.set(len(queued))
            if not queued:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=1.0)
                except TimeoutError:
                    pass
                continue
            job = self.store.get(queued[0])
            if job is None or job.status != QUEUED:
                continue
            await self._run(job)

    async def _run(self, job: Job) -> None:
        started = time.time()
        self.store.update(job.id, status=RUNNING, started_at=started, attempts=job.attempts + 1, stage="probe")
        self.running_id = job.id
        self.live[job.id] = {"stage": "probe", "progress": 0.0, "frames_done": 0, "frames_total": 0}
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._executor, self._execute, job)
        except Cancelled:
            if self._requeue_on_stop and self._stopping:
                # Graceful shutdown: this attempt does not count.
                self.store.update(job.id, status=QUEUED, attempts=job.attempts, stage=None, progress=0.0)
                log.info("job %s re-queued at shutdown", job.id)
            else:
                self._finish(job, CANCELED, error=("CANCELED", "canceled by request"))
                _remove_dir(job.work_dir)
        except Exception as exc:  # every failure becomes a job record, never a dead worker
            code = getattr(exc, "code", None) or ("INVALID_PARAMETER" if isinstance(exc, ValueError) else "INTERNAL")
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            if code == "INTERNAL":
                log.exception("job %s failed", job.id)
            self._finish(job, FAILED, error=(code, message))
        else:
            frames = max(result.frames, 1)
            spf = (time.time() - started) / frames
            self.seconds_per_frame = spf if self.seconds_per_frame is None else 0.7 * self.seconds_per_frame + 0.3 * spf
            for stage, seconds in result.timings.items():
                self.metrics.stage_seconds.labels(stage).observe(seconds)
            info = result.to_dict()
            info.pop("output_path", None)
            self._finish(job, SUCCEEDED, result_path=str(result.output_path), result_info=info)
        finally:
            self.running_id = None
            self._cancel.discard(job.id)
            self.live.pop(job.id, None)

    def _execute(self, job: Job) -> Any:
        """Runs in the GPU thread."""
        last_persist = [0.0]

        def progress(stage: str, done: int, total: int) -> None:
            lo, hi = STAGE_SPAN.get(stage, (0.0, 1.0))
            frac = lo + (hi - lo) * (done / total if total else 0.0)
            snap = {"stage": stage, "progress": round(min(frac, 1.0), 4)}
            if stage in ("detect", "denoise"):
                snap.update(frames_done=done, frames_total=total)
            else:
                snap.update({k: v for k, v in self.live.get(job.id, {}).items() if k.startswith("frames_")})
            self.live[job.id] = snap  # one dict assignment: atomic for readers
            now = time.monotonic()
            if now - last_persist[0] >= PERSIST_EVERY_S:
                last_persist[0] = now
                self.store.update(job.id, **snap)

        work = Path(job.work_dir)
        params = self.params_type(**job.params)
        return self.pipeline.run(
            job.video_path,
            job.audio_path,
            work / "result.mp4",
            params,
            progress=progress,
            should_cancel=lambda: job.id in self._cancel,
            work_dir=work / "tmp",
        )

    def _finish(
        self,
        job: Job,
        status: str,
        error: tuple[str, str] | None = None,
        result_path: str | None = None,
        result_info: dict | None = None,
    ) -> None:
        fields: dict[str, Any] = {"status": status, "finished_at": time.time()}
        if status == SUCCEEDED:
            fields.update(progress=1.0, stage="done", result_path=result_path, result_info=result_info)
        if error:
            fields.update(error_code=error[0], error_message=error[1])
        self.store.update(job.id, **fields)
        self.metrics.jobs_finished.labels(status).inc()
        if job.webhook_url:
            final = self.store.get(job.id)
            if final is not None:
                asyncio.get_running_loop().create_task(self._webhook(job.webhook_url, final))

    async def _webhook(self, url: str, job: Job) -> None:
        payload = {"event": "job.finished", "job": {k: v for k, v in asdict(job).items() if not k.endswith("_path")}}
        payload["job"].pop("work_dir", None)
        delay = 1.0
        async with httpx.AsyncClient(timeout=self._webhook_timeout) as client:
            for attempt in range(1, self._webhook_retries + 1):
                try:
                    resp = await client.post(url, json=payload)
                    if resp.status_code < 500:
                        return
                except httpx.HTTPError as exc:
                    log.warning("webhook %s attempt %d failed: %s", url, attempt, exc)
                await asyncio.sleep(delay)
                delay *= 2

    def recover(self) -> None:
        """After a restart: a job that was running runs once more, then fails INTERRUPTED."""
        for job_id in self.store.ids_with_status(RUNNING):
            job = self.store.get(job_id)
            if job is None:
                continue
            if job.attempts >= 2:
                self.store.update(
                    job_id,
                    status=FAILED,
                    finished_at=time.time(),
                    error_code="INTERRUPTED",
                    error_message="the service stopped twice while running this job",
                )
                _remove_dir(str(Path(job.work_dir) / "tmp"))
            else:
                self.store.update(job_id, status=QUEUED, stage=None, progress=0.0, frames_done=0)
                log.warning("job %s was interrupted by a restart; running it again", job_id)


def _remove_dir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
