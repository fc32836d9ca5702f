"""The FastAPI application: ``create_app(settings)`` and its lifespan (load the models once,
recover interrupted jobs, stop gracefully)."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from server.api import faces, health, jobs, page, stream
from server.api.body_timeout import BodyTimeoutMiddleware
from server.api.errors import install_error_handlers
from server.api.openapi import install_openapi
from server.api.service import Service
from server.jobs.model import JobStatus
from server.jobs.store import StoreUnavailable
from server.settings import Settings

log = logging.getLogger("latentsync.server")
GIL_SWITCH_INTERVAL_S = 0.0005


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        # The event loop shares the GIL with the GPU thread (Python between torch ops), upload
        # checks and detection threads; it waits up to one switch interval (5 ms by default)
        # at every GIL hand-over, several per request. A shorter interval keeps polls fast.
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        svc = Service(settings, loop)
        app.state.svc = svc
        try:
            svc.runner.recover()
            svc.sweep.run()  # what a killed process left: orphaned folders, tmp/, partial files
        except StoreUnavailable:  # the process stays up; /ready says 503 and why
            log.exception("the job database cannot be read: no recovery, no start-up sweep")
        svc.runner.start()
        loader = loop.run_in_executor(None, svc.runner.load)
        cleaner = asyncio.create_task(svc.housekeeping.loop(settings.cleanup_interval_s))
        await asyncio.to_thread(svc.face_scanner.recover)
        scan_cleaner = asyncio.create_task(svc.face_scanner.loop(settings.result_ttl_s, settings.cleanup_interval_s))
        try:
            yield
        finally:
            svc.intake.closed = True
            svc.face_intake.closed = True
            svc.face_scanner.stop()
            scan_cleaner.cancel()
            try:
                log.info("shutting down: %d queued jobs stay queued", svc.store.count(JobStatus.QUEUED))
            except StoreUnavailable:  # a damaged database must not stop the shutdown half-way
                log.info("shutting down (the job database cannot be read)")
            await svc.runner.stop()
            # Webhooks still being sent (a retry waiting its back-off) would be cancelled with the
            # loop: let them finish, for at most what their attempts and pauses can take.
            await asyncio.to_thread(svc.webhooks.flush, svc.webhooks.longest_delivery_s())
            cleaner.cancel()
            await asyncio.gather(loader, return_exceptions=True)
            svc.store.close()
            sys.setswitchinterval(switch_interval)

    app = FastAPI(
        title="LatentSync lip-sync service",
        version="0.1.0",
        description="Post a video and a speech track, poll the job, fetch the lip-synced MP4.",
        lifespan=lifespan,
        docs_url=None,  # served by api/page.py, behind the API key
        redoc_url=None,
        openapi_url=None,
    )
    install_error_handlers(app)
    app.add_middleware(BodyTimeoutMiddleware, seconds=settings.body_timeout_s, idle_s=settings.body_idle_s)
    app.include_router(health.public)  # /health: no key needed
    app.include_router(page.web)  # GET /: the page to try the service
    app.include_router(health.router)
    app.include_router(page.docs)
    app.include_router(jobs.router)
    app.include_router(faces.router)
    app.include_router(stream.router)  # GET /jobs/{id}/stream
    install_openapi(app, bearer=bool(settings.api_keys or settings.admin_api_keys))
    return app
