"""Taking a new job in (``POST /lipsync``): an upload slot of the client, the inputs, their
checks, room in the queue and the record, then the runner is told. A refused upload leaves
nothing behind."""

from __future__ import annotations

import uuid

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from server.api.admission import QueueAdmission, UploadSlots
from server.api.errors import APIError, insufficient_storage
from server.api.inputs import InputRoots, check_media, check_webhook, read_inputs, resolve_params
from server.api.views import JobViews
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
    ):
        self.settings, self.store, self.runner, self.views = settings, store, runner, views
        self.folders, self.disk, self.webhook_policy = folders, disk, webhook_policy
        self.roots = InputRoots(settings.input_dirs)
        self.closed = False  # set at shutdown: new jobs are refused (503)
        self.uploads = UploadSlots(settings.max_uploads_per_client)
        self.queue = QueueAdmission(store, views, settings.max_queue, settings.max_queue_per_key)

    async def receive(self, request: Request, owner: str | None) -> Job:
        """The new job, queued; an :class:`APIError` says why not."""
        if self.closed:
            raise APIError(503, "SHUTTING_DOWN", "the service is shutting down", {"Retry-After": "30"})
        storage = self.disk.state()
        if storage != "ok":  # before the body is read: the upload would fill the disk further
            raise insufficient_storage(storage)
        with self.uploads.hold(client_id(request, owner)):
            self.queue.check(owner)  # a full queue refuses before the body is read
            folder = self.folders.folder(uuid.uuid4().hex)
            try:
                folder.create()
                video, audio, params = await read_inputs(
                    request, self.roots, folder.path, self.settings.max_upload_mb * 1024 * 1024
                )
                if params.webhook_url:
                    await run_in_threadpool(check_webhook, self.webhook_policy, params.webhook_url)
                disk = await run_in_threadpool(check_media, video, audio, self.settings.media_limits())
                job = Job(
                    id=folder.name,
                    status=JobStatus.QUEUED,
                    params=resolve_params(params, self.settings.default_params()),
                    video_path=str(video),
                    audio_path=str(audio),
                    work_dir=str(folder.path),
                    webhook_url=params.webhook_url,
                    owner=owner,
                    disk_estimate_bytes=disk.total,
                )
                with self.queue.lock:  # the last check and the insert: one step
                    self.queue.check(owner)
                    self.store.insert(job)
            except BaseException as exc:
                folder.remove()  # frees what a refused upload took
                if is_disk_full(exc):  # the upload's files or the job record did not fit
                    raise insufficient_storage("the data folder is full") from exc
                raise
        self.runner.submit(job)
        return job


def client_id(request: Request, owner: str | None) -> str:
    """Whose upload slots a request takes: its API key's, else (no keys) its address's."""
    if owner is not None:
        return f"key:{owner}"
    return f"addr:{request.client.host if request.client else 'unknown'}"
