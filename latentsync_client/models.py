"""Typed views of the API's JSON. Field names are the API's own (``GET /jobs/{id}``);
fields the service adds later are kept in ``raw`` rather than refused, so an older client
keeps working against a newer service."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "canceled"})


@dataclass(frozen=True)
class JobError:
    code: str
    message: str


@dataclass(frozen=True)
class Job:
    """One lip-sync job as the service reports it."""

    id: str
    status: str  # queued, running, succeeded, failed, canceled (and "canceling" right after a cancel)
    stage: str | None = None
    progress: float = 0.0
    frames_done: int = 0
    frames_total: int = 0
    queue_position: int | None = None
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    eta_seconds: float | None = None
    attempts: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    error: JobError | None = None
    result_url: str | None = None
    result: dict[str, Any] | None = None
    worker: dict[str, str] | None = None
    disk_estimate_bytes: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        """Succeeded, failed or canceled: the job will not change any more."""
        return self.status in TERMINAL_STATUSES

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        known = {f.name for f in fields(cls)} - {"raw", "error"}
        values = {k: v for k, v in data.items() if k in known}
        err = data.get("error")
        error = JobError(str(err.get("code", "")), str(err.get("message", ""))) if isinstance(err, dict) else None
        return cls(**values, error=error, raw=dict(data))


@dataclass(frozen=True)
class JobList:
    """A page of ``GET /jobs``."""

    jobs: list[Job]
    total: int
    limit: int
    offset: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobList:
        return cls(
            jobs=[Job.from_json(j) for j in data.get("jobs", [])],
            total=int(data.get("total", 0)),
            limit=int(data.get("limit", 0)),
            offset=int(data.get("offset", 0)),
        )


@dataclass(frozen=True)
class FaceTracks:
    """The answer of ``POST /faces``: the people found in a video. The route is new; each
    track is kept as the service's JSON object (id, frames, boxes, thumbnail, ...)."""

    tracks: list[dict[str, Any]]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaceTracks:
        return cls(tracks=list(data.get("tracks", [])), raw=dict(data))
