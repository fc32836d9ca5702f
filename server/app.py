"""The FastAPI application: lifespan (load models once, recover jobs), auth, routes."""

from __future__ import annotations

import asyncio
import hmac
import logging
import shutil
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from server.errors import APIError, error_body, install_error_handlers
from server.job_store import QUEUED, Job, JobStore
from server.metrics import Metrics
from server.routes import job_view, router
from server.schemas import JobParams, JobView
from server.settings import Settings
from server.worker import GPUWorker

log = logging.getLogger("latentsync.server")


class Service:
    """Everything the routes share: settings, job store, worker, models."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.jobs_dir = settings.data_dir / "jobs"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.store = JobStore(settings.data_dir / "jobs.sqlite3")
        self.metrics = Metrics()
        self.worker = GPUWorker(self.store, self.metrics, settings.webhook_timeout_s, settings.webhook_retries)
        self.models: Any = None
        self.state = "loading"
        self.fast_path = "off"  # off, compiling, ready, failed
        self.load_error: str | None = None
        self.stopping = False
        self.input_roots = [p.resolve() for p in settings.input_dirs]

    # ---- model loading (in a thread: /health answers meanwhile) -----------------------
    def load_models(self) -> None:
        from latentsync_core.accel import AccelOptions
        from latentsync_core.loading import load_models
        from latentsync_core.pipeline import LipSyncParams, LipSyncPipeline
        from latentsync_core.template_cache import TemplateCache

        s = self.settings
        try:
            self.models = load_models(
                s.weights, s.checkpoint_dir, s.cache_dir, s.unet_config, s.device, s.gpu_id, s.dtype
            )
            compile_on = {"auto": None, "on": True, "off": False}[s.compile]
            accel = AccelOptions.for_device(self.models.device, compile=compile_on)
            cache = (
                TemplateCache(s.template_cache_dir, int(s.template_cache_max_gb * 2**30)) if s.template_cache else None
            )
            workers = s.detect_workers or None
            pipeline = LipSyncPipeline(self.models, accel=accel, template_cache=cache, detect_workers=workers)
            if s.warmup:
                pipeline.warmup()
            self.worker.params_type = LipSyncParams
            self.worker.pipeline = pipeline
            self.state = "ready"
            self.worker.wake()
            log.info("ready (%s weights on %s)", s.weights, self.models.device)
        except Exception as exc:  # reported by /ready; the process stays up for diagnosis
            log.exception("model loading failed")
            self.state, self.load_error = "error", str(exc)
            return
        if accel.compile:  # a daemon thread: shutting down never waits for a compile
            threading.Thread(target=self.compile_fast_path, args=(pipeline,), name="compile", daemon=True).start()

    def compile_fast_path(self, pipeline: Any) -> None:
        """Compile after the service is ready (jobs meanwhile run eagerly); the kernels are
        cached on disk, so a restart takes seconds instead of minutes."""
        import os

        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(self.settings.compile_cache_dir))
        self.fast_path = "compiling"
        try:
            seconds = pipeline.prepare_fast_path()
            self.fast_path = "ready"
            log.info("fast path ready (compiled in %.1f s)", seconds)
        except Exception:  # the eager path keeps serving
            log.exception("compiling the fast path failed; serving with the eager path")
            self.fast_path = "failed"

    # ---- helpers for routes -----------------------------------------------------------
    def get_job(self, job_id: str) -> Job:
        job = self.store.get(job_id) if len(job_id) <= 64 else None
        if job is None:
            raise APIError(404, "JOB_NOT_FOUND", f"no job with id '{job_id[:64]}'")
        return job

    def view(self, job: Job) -> JobView:
        return job_view(self, job)

    def resolve_params(self, params: JobParams) -> dict[str, Any]:
        s = self.settings
        return {
            "inference_steps": params.inference_steps if params.inference_steps is not None else s.inference_steps,
            "guidance_scale": params.guidance_scale if params.guidance_scale is not None else s.guidance_scale,
            "seed": params.seed if params.seed is not None else s.seed,
            "enable_deepcache": params.enable_deepcache if params.enable_deepcache is not None else s.enable_deepcache,
        }

    def allowed_input(self, raw: str) -> Path:
        """A path from a JSON request, accepted only inside a configured input folder."""
        if not self.input_roots:
            raise APIError(403, "PATH_INPUT_DISABLED", "path inputs are disabled (set LATENTSYNC_INPUT_DIRS)")
        if "\x00" in raw:
            raise APIError(400, "INVALID_PATH", "invalid path")
        path = Path(raw).resolve()  # resolves '..' and symlinks before the check
        if not any(path.is_relative_to(root) for root in self.input_roots):
            raise APIError(403, "PATH_NOT_ALLOWED", "the path is outside the allowed input folders")
        if not path.is_file():
            raise APIError(400, "FILE_NOT_FOUND", f"no such file: {Path(raw).name}")
        return path

    def estimate_wait(self, position: int) -> float:
        """Seconds until a job at ``position`` in the queue starts, from recent throughput."""
        spf = self.worker.seconds_per_frame
        if spf is None or position <= 0:
            return 0.0
        return round(position * spf * 250, 1)  # a typical job is ~10 s of video

    def update_gpu_metrics(self) -> None:
        if self.models is None or self.models.device.type != "cuda":
            return
        import torch

        self.metrics.gpu_memory.labels("allocated").set(torch.cuda.memory_allocated(self.models.device))
        self.metrics.gpu_memory.labels("reserved").set(torch.cuda.memory_reserved(self.models.device))
        self.metrics.gpu_memory.labels("peak").set(torch.cuda.max_memory_allocated(self.models.device))

    async def cleanup_loop(self) -> None:
        """Remove results older than the retention time."""
        while True:
            try:
                cutoff = time.time() - self.settings.result_ttl_s
                for job in self.store.expired_results(cutoff):
                    shutil.rmtree(job.work_dir, ignore_errors=True)
                    self.store.update(job.id, result_expired=True)
            except Exception:  # never let housekeeping kill the service
                log.exception("cleanup failed")
            await asyncio.sleep(self.settings.cleanup_interval_s)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = Service(settings)
        app.state.svc = svc
        svc.worker.recover()
        svc.worker.start()
        loader = asyncio.get_running_loop().run_in_executor(None, svc.load_models)
        cleaner = asyncio.create_task(svc.cleanup_loop())
        try:
            yield
        finally:
            svc.stopping = True
            log.info("shutting down: %d queued jobs stay queued", svc.store.count(QUEUED))
            await svc.worker.stop(requeue_running=True)
            cleaner.cancel()
            await asyncio.gather(loader, return_exceptions=True)
            svc.store.close()

    app = FastAPI(
        title="LatentSync lip-sync service",
        version="0.1.0",
        description="Post a video and a speech track, poll the job, fetch the lip-synced MP4.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    keys = [k.encode() for k in settings.api_keys]

    @app.middleware("http")
    async def require_api_key(request: Request, call_next: Any) -> Any:
        if keys and request.url.path != "/health":
            header = request.headers.get("authorization", "")
            token = header[7:].encode() if header.lower().startswith("bearer ") else b""
            if not any(hmac.compare_digest(token, k) for k in keys):
                code = "MISSING_API_KEY" if not token else "INVALID_API_KEY"
                return JSONResponse(
                    error_body(code, "a valid 'Authorization: Bearer <key>' header is required"),
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return await call_next(request)

    app.include_router(router)
    return app
