"""Service settings from the environment and ``.env`` (prefix ``LATENTSYNC_``).

The one definition of every setting: each ``latentsync`` command reads them through
:func:`load_settings` (a flag beats the environment, which beats ``.env``, which beats the
default here); ``latentsync config`` shows what they resolve to and where each came from.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from latentsync_core.common.cli_settings import ENV_FILE, PREFIX, SettingsInvalid
from latentsync_core.inference.params import PARAM_BOUNDS, LipSyncParams
from latentsync_core.media.limits import MediaLimits

if TYPE_CHECKING:
    from latentsync_core.inference.factory import PipelineOptions
    from latentsync_core.vision.face_detection import FaceDetector

ROOT = Path(__file__).resolve().parent.parent
_DEFAULTS = LipSyncParams()


def _bounded(name: str) -> Any:
    """A default job parameter with the library's bounds (one definition: PARAM_BOUNDS)."""
    lo, hi = PARAM_BOUNDS[name]
    return Field(getattr(_DEFAULTS, name), ge=lo, le=hi)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, env_file=ENV_FILE, extra="ignore")

    # Models
    weights: Literal["official", "demo"] = "official"
    checkpoint_dir: Path = ROOT / "checkpoints"
    unet_config: Path = ROOT / "configs" / "unet" / "stage2_512.yaml"
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    gpu_id: int = 0
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    # Speed
    compile: Literal["auto", "on", "off"] = "auto"  # torch.compile full windows; auto = on a GPU
    # Portable compiled kernels (``latentsync warmup --export DIR`` makes them; an image can ship
    # them): loaded before the compile, saved after a cold one. Default: <data_dir>/cache/compile-artifacts.
    compile_artifacts: Path | None = None
    template_cache: bool = True  # reuse face detection + VAE encodes of a video seen before
    template_cache_max_gb: float = Field(4.0, gt=0)
    detect_workers: int = Field(0, ge=0)  # face-detection threads; 0 = all cores but one
    detect_stride: int = Field(1, ge=1, le=8)  # detect every k-th frame, interpolate between; 1 = every frame
    # Sync score (offset, LSE-C, LSE-D) of every job's output with SyncNetV2; auto: on when its
    # weights (checkpoints/auxiliary/syncnet_v2.model) exist, and with demo weights (random).
    sync_score: Literal["auto", "on", "off"] = "auto"

    # Default job parameters
    inference_steps: int = _bounded("inference_steps")
    guidance_scale: float = _bounded("guidance_scale")
    seed: int = _bounded("seed")
    enable_deepcache: bool = _DEFAULTS.enable_deepcache

    # Storage
    data_dir: Path = ROOT / "data"
    input_dirs: Annotated[list[Path], NoDecode] = Field(default_factory=list)  # folders JSON requests may read from
    result_ttl_s: int = Field(24 * 3600, ge=1)
    cleanup_interval_s: float = Field(60.0, gt=0)

    # Limits and protection
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_upload_mb: int = Field(500, ge=1)
    max_video_s: float = Field(600.0, gt=0)
    max_audio_s: float = Field(600.0, gt=0)
    max_queue: int = Field(32, ge=1)
    webhook_timeout_s: float = 10.0
    webhook_retries: int = 3
    warmup: bool = True

    # Tenants, retention, webhooks (issue 16)
    admin_api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)  # see and manage every job
    record_ttl_s: int = Field(7 * 24 * 3600, ge=1)  # finished job records are purged after this
    webhook_allow_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)  # names or CIDRs

    # Hostile media (issue 16). MAX_VIDEO_S/MAX_AUDIO_S above hold for what is decoded too.
    max_pixels: int = Field(3840 * 2160, ge=1)  # decoded frame width x height; larger: FRAME_TOO_LARGE
    probe_timeout_s: float = Field(30.0, gt=0)  # one ffprobe/ffmpeg probe of an input
    probe_memory_mb: int = Field(1024, ge=64)  # address space a probe's child may take
    # Scale (issue 14): every device of this host, then many hosts.
    # Devices this process serves, one model copy and one worker each: "all" (every GPU),
    # "0,1" (those GPUs), "cpu,cpu" (CPU workers, for tests); empty: one, from device/gpu_id.
    gpu_ids: str = ""
    # Lend idle devices to a running job's windows: auto = while no job waits (the queue is
    # shorter than the devices); the output is the same however the windows are split.
    split_windows: Literal["auto", "off"] = "auto"
    # Many hosts: "redis://host:6379/0" makes the API enqueue on Celery (Redis broker) and keep
    # job records in Redis; `latentsync worker` runs the jobs. Empty: embedded (SQLite, in process).
    broker_url: str = ""
    # Celery redelivers an unacknowledged job after this long: longer than the longest job.
    visibility_timeout_s: int = Field(6 * 3600, ge=60)
    worker_name: str = ""  # how job records name this host (empty: the host name)
    # A running job's worker renews a lease this often x4; an expired lease: the worker died.
    worker_lease_s: float = Field(15.0, gt=0)
    # Disk and slow clients (issue 16 items 4 and 10)
    min_free_mb: float = Field(1024.0, ge=0)  # below this free in data_dir: /ready 503, new jobs 507
    body_timeout_s: float = Field(300.0, gt=0)  # a request body must arrive within this, else 408
    # Worst-case disk one job may need (frame store of a looping video, moments, output), from
    # its probes at upload: larger is refused with 413 JOB_TOO_LARGE_FOR_DISK. GiB (2**30), as
    # template_cache_max_gb; 20: a 1080p job whose video may loop, up to about 125 s long.
    max_job_disk_gb: float = Field(20.0, gt=0)
    # Face scans (POST /faces, issue 26): how many run at once (each with DETECT_WORKERS threads),
    # beside the GPU jobs; more wait (up to MAX_QUEUE). Kept for RESULT_TTL_S.
    face_scan_workers: int = Field(1, ge=1, le=16)
    # Admission (issue 22 item 1): an upload in flight holds no queue slot; each client (API key,
    # or address without keys) has at most this many uploads in flight, more: 429 TOO_MANY_UPLOADS.
    max_uploads_per_client: int = Field(8, ge=1)
    body_idle_s: float = Field(15.0, gt=0)  # no body bytes for this long: 408 BODY_IDLE_TIMEOUT at once
    max_queue_per_key: int = Field(0, ge=0)  # queued jobs one API key may hold; 0: only MAX_QUEUE bounds them
    # Probe children (ffprobe) of upload checks running at once; 0: cores - 1, at least 1, so that
    # a burst of uploads leaves the event loop a core (issue 22 item 7).
    max_concurrent_probes: int = Field(0, ge=0)
    # Results that play while they render (issue 21 item 5): each running job also writes the
    # frames finished so far as a growing fragmented MP4, served by GET /jobs/{id}/stream.
    live_stream: bool = True
    # Signed webhooks (issue 24 item 3): every delivery carries the Standard Webhooks headers
    # (Webhook-Id, -Timestamp, -Signature: HMAC-SHA256); receivers check them with
    # latentsync_client.verify_webhook. A "whsec_<base64>" key or any string; empty: unsigned.
    webhook_secret: str = ""

    @field_validator("admin_api_keys", "webhook_allow_hosts", mode="before")
    @classmethod
    def _split_more_lists(cls, value: object) -> object:
        return cls._split_list(value)

    @field_validator("input_dirs", "api_keys", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        # Accept "a,b" as well as JSON lists in the environment.
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [v.strip() for v in text.split(",") if v.strip()]
        return value

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    @property
    def template_cache_dir(self) -> Path:
        return self.cache_dir / "templates"

    @property
    def compile_cache_dir(self) -> Path:
        return self.cache_dir / "inductor"

    @property
    def compile_artifacts_dir(self) -> Path:
        return self.compile_artifacts or self.cache_dir / "compile-artifacts"

    def media_limits(self) -> MediaLimits:
        """What job inputs may be, for the upload check and the pipeline alike. Inputs are
        read after they were checked: a name replaced by a symlink is never followed."""
        return MediaLimits(
            max_video_s=self.max_video_s,
            max_audio_s=self.max_audio_s,
            max_pixels=self.max_pixels,
            probe_timeout_s=self.probe_timeout_s,
            probe_memory_mb=self.probe_memory_mb,
            follow_symlinks=False,
            max_job_disk_bytes=int(self.max_job_disk_gb * 2**30),
        )

    def default_params(self) -> dict[str, Any]:
        """Job parameters a request leaves unset."""
        return {
            "inference_steps": self.inference_steps,
            "guidance_scale": self.guidance_scale,
            "seed": self.seed,
            "enable_deepcache": self.enable_deepcache,
        }

    def make_face_detector(self) -> FaceDetector:
        """The face detector jobs use (InsightFace when its weights are in the checkpoint folder,
        else dlib; demo weights: dlib), on the CPU: face scans give the ids jobs will find."""
        from latentsync_core.vision.face_detection import make_face_detector

        return make_face_detector(self.checkpoint_dir / "auxiliary" if self.weights == "official" else None)

    def pipeline_options(self, compile: bool | None = None) -> PipelineOptions:
        """How the library builds the pipeline from these settings (service and CLI alike)."""
        from latentsync_core.inference.factory import PipelineOptions

        # Compiled kernels survive restarts here (a restart then compiles in seconds).
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(self.compile_cache_dir))
        return PipelineOptions(
            weights=self.weights,
            checkpoint_dir=self.checkpoint_dir,
            cache_dir=self.cache_dir,
            unet_config=self.unet_config,
            device=self.device,
            gpu_id=self.gpu_id,
            dtype=self.dtype,
            compile={"auto": None, "on": True, "off": False}[self.compile] if compile is None else compile,
            template_cache_dir=self.template_cache_dir if self.template_cache else None,
            template_cache_max_bytes=int(self.template_cache_max_gb * 2**30),
            detect_workers=self.detect_workers or None,
            detect_stride=self.detect_stride,
            warmup=self.warmup,
            sync_score={"auto": None, "on": True, "off": False}[self.sync_score],
            media_limits=self.media_limits(),
        )


def describe_errors(exc: ValidationError) -> str:
    """Pydantic's complaints as one sentence naming the variables."""
    parts = []
    for error in exc.errors():
        name = PREFIX + "_".join(str(part) for part in error["loc"][:1]).upper()
        parts.append(f"{name}: {error['msg']}")
    return "; ".join(parts)


def load_settings(**flags: Any) -> Settings:
    """The effective settings: ``flags`` (given command-line values) over the environment over
    ``.env`` over the defaults. Raises ``SettingsInvalid`` (code ``SETTINGS_INVALID``)."""
    try:
        return Settings(**flags)
    except ValidationError as exc:
        raise SettingsInvalid(describe_errors(exc)) from exc
