"""A job's record and its statuses (the transitions between them: ``lifecycle.py``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def final(self) -> bool:
        return self in FINAL


FINAL = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED)


@dataclass
class Job:
    id: str
    status: str
    params: dict[str, Any]
    video_path: str
    audio_path: str
    work_dir: str
    created_at: float = field(default_factory=time.time)
    stage: str | None = None
    progress: float = 0.0
    frames_done: int = 0
    frames_total: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0
    result_path: str | None = None
    result_expired: bool = False
    result_info: dict[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None
    webhook_url: str | None = None
    owner: str | None = None  # SHA-256 (hex) of the API key that created the job; None: no keys configured
    worker: dict[str, str] | None = None  # {"host", "device"} of the last attempt; None before it started
    disk_estimate_bytes: int | None = None  # worst-case disk the job may need (latentsync_core/job_disk.py)
    # The end event is owed (``owed_webhooks.py``): set with the final status when there is a
    # webhook_url, moved on at each re-send, None once delivered or given up.
    webhook_owed_since: float | None = None
    webhook_outcome: str | None = None  # "delivered" or "gave_up" (retries exhausted); None while owed
