"""What the routes share, wired once per process: the settings, the back-end (a ``JobStore``
and a ``JobRunner``, from ``server.runners.factory``), and the API's own parts built on them
(the job views, the intake of new jobs, the health checks, housekeeping), and the face
scans (``POST /faces``) with their own intake and scanner."""

from __future__ import annotations

import asyncio

from server.api.face_intake import FaceIntake
from server.api.intake import Intake
from server.api.views import JobViews
from server.faces.known import KnownTracks
from server.faces.record import ScanFolders
from server.faces.scanner import FaceScanner
from server.jobs.disk import DiskSpace
from server.jobs.folder import JobFolders
from server.jobs.housekeeping import Housekeeping
from server.jobs.store import StoreCheck
from server.jobs.sweep import StartupSweep
from server.runners.factory import make_backend
from server.settings import Settings


class Service:
    def __init__(self, settings: Settings, loop: asyncio.AbstractEventLoop):
        backend = make_backend(settings, loop)
        self.settings = settings
        self.store = backend.store
        self.runner = backend.runner
        self.lifecycle = backend.lifecycle
        self.metrics = backend.metrics
        self.webhooks = backend.webhooks
        folders = JobFolders(settings.data_dir / "jobs")
        self.disk = DiskSpace(settings.data_dir, int(settings.min_free_mb * 2**20))
        self.store_check = StoreCheck(self.store)
        self.views = JobViews(self.store, self.runner)
        scans = ScanFolders(settings.data_dir / "faces")
        self.known_tracks = KnownTracks(scans)
        self.intake = Intake(
            settings, self.store, self.runner, self.views, folders, self.disk, self.webhooks.policy, self.known_tracks
        )
        self.face_scanner = FaceScanner(
            scans,
            self.known_tracks,
            settings.make_face_detector,
            settings.media_limits(),
            settings.detect_workers or None,
            settings.face_scan_workers,
        )
        self.face_intake = FaceIntake(settings, self.face_scanner, scans, self.disk)
        self.housekeeping = Housekeeping(
            self.store, folders, settings.result_ttl_s, settings.record_ttl_s, webhooks=self.webhooks
        )
        caches = [settings.template_cache_dir, settings.compile_artifacts_dir]
        self.sweep = StartupSweep(self.store, folders, settings.data_dir, caches)
