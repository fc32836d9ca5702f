"""Running one started job on one device to its end state: the code shared by this process's
device workers (``device_worker.py``) and the Celery workers of other hosts
(``celery_worker.py``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from latentsync_core.errors import Cancelled, CodedError
from server.jobs.disk import CODE as STORAGE_CODE
from server.jobs.disk import is_disk_full
from server.jobs.folder import JobFolder
from server.jobs.lifecycle import JobLifecycle
from server.jobs.metrics import Metrics
from server.jobs.model import Job
from server.jobs.progress import ProgressCallback

if TYPE_CHECKING:
    from latentsync_core.inference.pipeline import LipSyncPipeline
    from latentsync_core.inference.window_split import DeviceLender

log = logging.getLogger(__name__)


def run_started_job(
    job: Job,
    pipeline: LipSyncPipeline,
    lifecycle: JobLifecycle,
    metrics: Metrics,
    report: ProgressCallback,
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
            LipSyncParams(**job.params),
            progress=report,
            should_cancel=should_cancel,
            work_dir=folder.tmp,
            lender=lender,
            stream_path=folder.stream if live_stream else None,
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
            folder.remove_tmp()  # give back what it took
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
