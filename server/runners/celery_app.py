"""The Celery application of many-hosts mode, shared by the API's dispatcher
(``celery_dispatcher.py``) and the workers (``celery_worker.py``), and the coordination keys
they keep in Redis beside the job records.

Many hosts: jobs on Celery with a Redis broker, records in Redis (``server/jobs/redis_store.py``),
uploads and results on a folder every node mounts (``LATENTSYNC_DATA_DIR``).

API side, ``CeleryDispatcher`` (in place of the device pool): each queued job is sent once
per attempt as a task; a cancel is a flag in Redis that the running worker polls between
steps; a running job whose worker stopped renewing its lease (killed, host lost) is put
back in the queue once, then fails INTERRUPTED, as the embedded mode does after a crash.

Worker side, ``DeviceRuntime`` (``latentsync worker``, one process per device): the models
are loaded once; Celery hands it one job at a time (prefetch 1, late acknowledgement, a
visibility timeout longer than the longest job). A task only runs a job that is still
queued and not claimed for this attempt, so a message redelivered after a crash does
nothing twice. A worker told to stop (SIGTERM: Celery's warm shutdown, a rolling deploy)
stops its job at the next denoising step, puts it back in the queue without counting the
attempt, and rejects the task's message back to the broker for another worker.

An object store (S3) in place of the shared folder would take: uploads written there by
the API, each worker downloading inputs into a local work folder and uploading
``result.mp4``, and the result route answering with a presigned URL.
"""

from __future__ import annotations

from celery import Celery

from server.jobs.model import Job
from server.settings import Settings

QUEUE = "latentsync"
RUN_JOB = "latentsync.run_job"


def make_celery(settings: Settings) -> Celery:
    app = Celery("latentsync", broker=settings.broker_url)
    app.conf.update(
        task_default_queue=QUEUE,
        task_acks_late=True,  # a job taken by a worker that dies is not lost with it
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # a busy device holds no other job back from idle ones
        worker_concurrency=1,
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,  # the job record is the result
        worker_hijack_root_logger=False,
    )
    return app


class Keys:
    """The coordination keys beside the records."""

    def __init__(self, prefix: str = "latentsync:"):
        self.prefix = prefix

    def sent(self, job: Job) -> str:
        return f"{self.prefix}sent:{job.id}:{job.attempts}"

    def claim(self, job: Job) -> str:
        return f"{self.prefix}claim:{job.id}:{job.attempts}"

    def lease(self, job_id: str) -> str:
        return f"{self.prefix}lease:{job_id}"

    def cancel(self, job_id: str) -> str:
        return f"{self.prefix}cancel:{job_id}"

    def recovered(self, job: Job) -> str:
        return f"{self.prefix}recovered:{job.id}:{job.attempts}"
