"""Request and response models of the HTTP API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from latentsync_core.inference.params import PARAM_BOUNDS


def _optional(name: str) -> Any:
    lo, hi = PARAM_BOUNDS[name]
    return Field(None, ge=lo, le=hi)


class JobParams(BaseModel):
    """Optional per-job overrides; unset ones take the service defaults."""

    model_config = ConfigDict(extra="forbid")

    inference_steps: int | None = _optional("inference_steps")
    guidance_scale: float | None = _optional("guidance_scale")
    seed: int | None = _optional("seed")
    enable_deepcache: bool | None = None
    webhook_url: str | None = Field(
        None, max_length=2048, json_schema_extra={"format": "uri", "pattern": "^https?://"}
    )  # a public http(s) URL; see WEBHOOK_ALLOW_HOSTS

    @field_validator("webhook_url")
    @classmethod
    def _http_only(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("webhook_url must be an http(s) URL")
        return value


class PathRequest(JobParams):
    """JSON form of POST /lipsync for co-located backends: files inside an allowed folder."""

    video_path: str = Field(..., max_length=4096)
    audio_path: str = Field(..., max_length=4096)


class JobView(BaseModel):
    id: str
    status: str
    stage: str | None
    progress: float
    frames_done: int
    frames_total: int
    queue_position: int | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    eta_seconds: float | None
    attempts: int
    params: dict[str, Any]
    error: dict[str, str] | None
    result_url: str | None
    result: dict[str, Any] | None
    worker: dict[str, str] | None = Field(None, description="where it ran: {host, device}")
    disk_estimate_bytes: int | None = Field(
        None, description="worst-case disk the job may need (frame store, moments, output), from its probes"
    )


class JobList(BaseModel):
    jobs: list[JobView]
    total: int
    limit: int
    offset: int


class ErrorDetail(BaseModel):
    code: str = Field(..., description="stable, machine-readable (QUEUE_FULL, JOB_NOT_FOUND, ...)")
    message: str = Field(..., description="for humans")


class ErrorResponse(BaseModel):
    """Every error of the API has this body."""

    error: ErrorDetail
