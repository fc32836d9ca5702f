"""Running one started job on one device to its end state: the code shared by this process's
device workers (``device_worker.py``) and the Celery workers of other hosts
(``celery_worker.py``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from latentsync_core.common.errors import Cancelled, CodedError
from latentsync_core.inference.stages import ProgressFn
from server.jobs.disk import CODE as STORAGE_CODE
from server.jobs.disk import is_disk_full
from server.jobs.folder import JobFolder
from server.jobs.lifecycle import JobLifecycle
from server.jobs.metrics import Metrics
from server.jobs.model import Job
from server.jobs.store import StoreUnavailable

if TYPE_CHECKING:
    from latentsync_core.inference.pipeline import LipSyncPipeline
    from latentsync_core.inference.window_split import DeviceLender

log = logging.getLogger(__name__)
STORE_PATIENCE_S = 120.0  # a Redis restart or failover takes seconds
STORE_RETRY_S = 2.0
T = TypeVar("T")


def run_started_job(
    job: Job,
    pipeline: LipSyncPipeline,
    lifecycle: JobLifecycle,
    metrics: Metrics,
    report: ProgressFn,
    should_cancel: Callable[[], bool],
    stopping: Callable[[], bool],
    lender: DeviceLender | None = None,
    live_stream: bool = False,
) -> float | None:
    """Run a started job to its end state (in the device's thread, here or on a Celery
    worker): succeeded, failed with a code, canceled, or back in the queue when the worker is
    stopping. Seconds per output frame when it succeeded. ``live_stream``: the frames finished
    so far also go to the job folder's growing ``stream.mp4`` while it runs."""
    from latentsync_core.inference.params import LipSyncParams

    started = time.time()
    folder = JobFolder.of(job)
    try:
        result = pipeline.run(
            job.video_path,
            job.audio_path,
            folder.result,
            LipSyncParams(**{k: v for k, v in job.params.items() if k != "quality"}),  # the preset is in the rest
            progress=report,
            should_cancel=lambda: should_cancel() or stopping(),
            work_dir=folder.tmp,
            lender=lender,
            stream_path=folder.stream if live_stream else None,
        )
    except Cancelled:
        if stopping():  # a shutdown stopped it between windows: the job goes back, this attempt does not count
            retry_store(lambda: lifecycle.requeue(job))
        else:
            retry_store(lambda: lifecycle.cancel(job))
    except CodedError as exc:  # what the inputs caused: the client's to see as it is
        code, message = exc.code, exc.message
        log.info("job %s failed: %s %s", job.id, code, message)
        retry_store(lambda: lifecycle.fail(job, code, message))
    except Exception as exc:
        if is_disk_full(exc):  # not a bug: the data folder filled up (/ready says so too)
            log.error("job %s failed: the data folder is full (%s)", job.id, exc)
            folder.remove_tmp()  # give back what it took
            retry_store(lambda: lifecycle.fail(job, STORAGE_CODE, "the server's disk filled up while running this job"))
        else:  # a bug or a broken installation: ours to look at
            log.exception("job %s failed with an internal error", job.id)
            message = f"internal error ({type(exc).__name__}); see the service log"
            retry_store(lambda: lifecycle.fail(job, "INTERNAL", message))
    else:
        for stage, seconds in result.timings.items():
            metrics.stage_seconds.labels(stage).observe(seconds)
        if result.sync is not None:
            metrics.lse_c.observe(result.sync["lse_c"])
        info = result.to_dict()
        info.pop("output_path", None)
        retry_store(lambda: lifecycle.succeed(job, str(result.output_path), info))
        return (time.time() - started) / max(result.frames, 1)
    return None


def retry_store(transition: Callable[[], T], patience_s: float = STORE_PATIENCE_S) -> T:
    """A store call (a job's last transition), tried again while the store is unavailable
    (Redis restarting) for up to ``patience_s``; after that the error goes up, and a job still
    running in its record is recovered as a crashed one (it runs again)."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            return transition()
        except StoreUnavailable as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("job store unavailable (%s); trying again in %.0f s", exc, STORE_RETRY_S)
            time.sleep(STORE_RETRY_S)
