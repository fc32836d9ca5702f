"""A job as the API shows it (``GET /jobs/{id}``, lists, answers to POST and DELETE): the
record, the live progress of a running job, its queue position and ETA, computed here only."""

from __future__ import annotations

import time

from server.api.schemas import JobView
from server.jobs.model import Job, JobStatus
from server.jobs.store import JobStore
from server.runners.runner import JobRunner

TYPICAL_JOB_FRAMES = 250  # ~10 s of video: what a queued job ahead is assumed to take


class JobViews:
    def __init__(self, store: JobStore, runner: JobRunner):
        self.store, self.runner = store, runner

    def estimate_wait(self, position: int) -> float:
        """Seconds until a job at ``position`` in the queue starts, from recent throughput."""
        spf = self.runner.seconds_per_frame
        if spf is None or position <= 0:
            return 0.0
        return round(position * spf * TYPICAL_JOB_FRAMES, 1)

    def view(self, job: Job) -> JobView:
        live = self.runner.progress(job.id) if job.status == JobStatus.RUNNING else None
        snap = {
            "stage": job.stage,
            "progress": job.progress,
            "frames_done": job.frames_done,
            "frames_total": job.frames_total,
            **(live or {}),
        }
        position = None
        eta = None
        if job.status == JobStatus.QUEUED:
            queued = self.store.queued_ids()
            position = queued.index(job.id) + 1 if job.id in queued else None
            eta = self.estimate_wait(position or 0) or None
        elif job.status == JobStatus.RUNNING and job.started_at and snap["progress"] > 0.02:
            elapsed = time.time() - job.started_at
            eta = round(elapsed * (1 - snap["progress"]) / snap["progress"], 1)
        error = {"code": job.error_code, "message": job.error_message or ""} if job.error_code else None
        succeeded = job.status == JobStatus.SUCCEEDED and not job.result_expired
        return JobView(
            id=job.id,
            status=job.status,
            stage=snap["stage"],
            progress=snap["progress"],
            frames_done=snap.get("frames_done", 0),
            frames_total=snap.get("frames_total", 0),
            queue_position=position,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            eta_seconds=eta,
            attempts=job.attempts,
            params=job.params,
            error=error,
            result_url=f"/jobs/{job.id}/result" if succeeded else None,
            result=job.result_info,
            worker=job.worker,
            disk_estimate_bytes=job.disk_estimate_bytes,
        )
