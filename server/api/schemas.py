"""Request and response models of the HTTP API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from latentsync_core.inference.length_modes import SYNC_MODES
from latentsync_core.inference.params import PARAM_BOUNDS, QUALITIES, SAMPLERS


def _optional(name: str) -> Any:
    lo, hi = PARAM_BOUNDS[name]
    return Field(None, ge=lo, le=hi)


# ---- dubbing: the face to animate, length modes, samplers (issues 21 and 26) ----------------
def _choice(values: tuple[str, ...], description: str) -> Any:
    """An optional string parameter with its allowed values documented; an unknown one is
    refused with the library's code (400), not by the schema (422)."""

    def document(schema: dict[str, Any]) -> None:
        for option in schema.get("anyOf", []):
            if option.get("type") == "string":
                option["enum"] = list(values)

    return Field(None, max_length=64, description=description, json_schema_extra=document)


class DubbingParams(BaseModel):
    """Which face, what to do when lengths differ, which sampler (part of ``JobParams``)."""

    face: str | None = Field(
        None,
        max_length=64,
        description="largest (default: the largest face track of each shot), speaker, track:<id> "
        "(an id from POST /faces on the same file) or point:<x>,<y>@<seconds>",
    )
    sync_mode: str | None = _choice(SYNC_MODES, "when speech and video lengths differ (default bounce)")
    sampler: str | None = _choice(SAMPLERS, "ddim (default, upstream's), or dpmpp_2m / unipc at ~10 steps")
    quality: str | None = _choice(QUALITIES, "exact (default) or fast: DeepCache + dpmpp_2m at 10 steps, unless set")


class JobParams(DubbingParams):
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


class FacesPathRequest(BaseModel):
    """JSON form of POST /faces: a video inside LATENTSYNC_INPUT_DIRS."""

    model_config = ConfigDict(extra="forbid")

    video_path: str = Field(..., max_length=4096)


class FaceTrackSecond(BaseModel):
    second: int
    box: list[float] = Field(..., description="median x1, y1, x2, y2 of the face in that second (pixels)")


class FaceTrackView(BaseModel):
    id: int = Field(..., description="for face=track:<id> on /lipsync with the same file")
    shot: int
    first_frame: int
    last_frame: int
    start: float = Field(..., description="seconds")
    end: float
    detections: int
    size: list[float] = Field(..., description="median box width and height (pixels)")
    boxes_per_second: list[FaceTrackSecond]
    thumbnail_url: str | None


class FaceScanView(BaseModel):
    id: str
    status: str = Field(..., description="queued, running, succeeded or failed")
    progress: float
    frames_done: int
    frames_total: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    file_sha256: str = Field(..., description="of the scanned file: track ids hold for these bytes only")
    error: dict[str, str] | None
    width: int | None = None
    height: int | None = None
    frames: int | None = Field(None, description="at 25 fps, as a job sees the video")
    detector: str | None = None
    shots: list[dict[str, int]] = Field(default_factory=list, description="[start_frame, end_frame) of each shot")
    tracks: list[FaceTrackView] = Field(default_factory=list)
    seconds: float | None = Field(None, description="how long the scan took")
