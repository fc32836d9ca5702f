"""Taking a new job in (``POST /lipsync``): a queue slot, the inputs, their checks, the record,
then the runner is told. A refused upload leaves nothing behind."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from server.api.errors import APIError, insufficient_storage
from server.api.inputs import InputRoots, check_media, check_webhook, read_inputs
from server.api.job_options import check_face, job_params
from server.api.views import JobViews
from server.faces.known import KnownTracks
from server.jobs.disk import DiskSpace, is_disk_full
from server.jobs.folder import JobFolders
from server.jobs.model import Job, JobStatus
from server.jobs.store import JobStore
from server.jobs.webhooks import WebhookPolicy
from server.runners.runner import JobRunner
from server.settings import Settings


class Intake:
    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        runner: JobRunner,
        views: JobViews,
        folders: JobFolders,
        disk: DiskSpace,
        webhook_policy: WebhookPolicy,
        known_tracks: KnownTracks,
    ):
        self.settings, self.store, self.runner, self.views = settings, store, runner, views
        self.folders, self.disk, self.webhook_policy = folders, disk, webhook_policy
        self.known_tracks = known_tracks  # face=track:<id> is checked against a scan of the same file
        self.roots = InputRoots(settings.input_dirs)
        self.closed = False  # set at shutdown: new jobs are refused (503)
        self._admission = threading.Lock()
        self._reserved = 0  # queue slots held by uploads still being received or checked

    async def receive(self, request: Request, owner: str | None) -> Job:
        """The new job, queued; an :class:`APIError` says why not."""
        if self.closed:
            raise APIError(503, "SHUTTING_DOWN", "the service is shutting down", {"Retry-After": "30"})
        with self.admission():  # a queue slot, reserved before the body is read
            folder = self.folders.folder(uuid.uuid4().hex)
            try:
                folder.create()
                video, audio, params = await read_inputs(
                    request, self.roots, folder.path, self.settings.max_upload_mb * 1024 * 1024
                )
                values = job_params(params, self.settings.default_params())  # 400 with the library's codes
                if params.webhook_url:
                    await run_in_threadpool(check_webhook, self.webhook_policy, params.webhook_url)
                disk, vinfo = await run_in_threadpool(check_media, video, audio, self.settings.media_limits())
                await run_in_threadpool(check_face, values.get("face"), video, vinfo, self.known_tracks)
                job = Job(
                    id=folder.name,
                    status=JobStatus.QUEUED,
                    params=values,
                    video_path=str(video),
                    audio_path=str(audio),
                    work_dir=str(folder.path),
                    webhook_url=params.webhook_url,
                    owner=owner,
                    disk_estimate_bytes=disk.total,
                )
                self.store.insert(job)
            except BaseException as exc:
                folder.remove()  # frees what a refused upload took
                if is_disk_full(exc):  # the upload's files or the job record did not fit
                    raise insufficient_storage("the data folder is full") from exc
                raise
        self.runner.submit(job)
        return job

    @contextmanager
    def admission(self) -> Iterator[None]:
        """Hold a queue slot while a job is received, checked and inserted: the check and the
        reservation are one step under a lock (queued + reserved < max_queue), so concurrent
        uploads cannot all pass a check made before their bodies arrive. The slot is released
        when the upload fails, or once the job is in the store (then it counts as queued)."""
        storage = self.disk.state()
        if storage != "ok":  # before the body is read: the upload would fill the disk further
            raise insufficient_storage(storage)
        with self._admission:
            waiting = self.store.count(JobStatus.QUEUED) + self._reserved
            if waiting >= self.settings.max_queue:
                retry = int(self.views.estimate_wait(waiting)) or 60
                message = f"{waiting} jobs are waiting; try again later"
                raise APIError(429, "QUEUE_FULL", message, {"Retry-After": str(retry)})
            self._reserved += 1
        try:
            yield
        finally:
            with self._admission:
                self._reserved -= 1
