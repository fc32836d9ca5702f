"""Taking a new job in (``POST /lipsync``): an upload slot of the client, the inputs, their
checks, room in the queue and the record, then the runner is told. A refused upload leaves
nothing behind."""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from latentsync_core.inference.length_modes import DEFAULT_SYNC_MODE
from server.api.admission import QueueAdmission, UploadSlots
from server.api.errors import APIError, insufficient_storage
from server.api.idempotency import Idempotency, idempotency_key
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
        self.uploads = UploadSlots(settings.max_uploads_per_client)
        self.queue = QueueAdmission(store, views, settings.max_queue, settings.max_queue_per_key)
        self.idempotency = Idempotency(store)
        self.probes = asyncio.Semaphore(probe_slots(settings.max_concurrent_probes))

    async def receive(self, request: Request, owner: str | None) -> Received:
        """The new job, queued (or, for a retry with the same Idempotency-Key, the job its
        first attempt made); an :class:`APIError` says why not."""
        key, tenant = idempotency_key(request), owner or ""
        if self.closed:
            raise APIError(503, "SHUTTING_DOWN", "the service is shutting down", {"Retry-After": "30"})
        storage = self.disk.state()
        if storage != "ok":  # before the body is read: the upload would fill the disk further
            raise insufficient_storage(storage)
        with self.uploads.hold(client_id(request, owner)):
            if key is None or not self.idempotency.known(tenant, key):  # a retry's job may fill the queue
                self.queue.check(owner)  # a full queue refuses before the body is read
            folder = self.folders.folder(uuid.uuid4().hex)
            try:
                folder.create()
                received = await read_inputs(
                    request, self.roots, folder.path, self.settings.max_upload_mb * 1024 * 1024, key is not None
                )
                video, audio, params = received.video, received.audio, received.params
                fingerprint = received.fingerprint if key is not None else None
                if key is not None and fingerprint is not None:
                    earlier = self.idempotency.earlier_job(tenant, key, fingerprint)
                    if earlier is not None:  # a retry: its files are not needed
                        folder.remove()
                        return Received(earlier, replayed=True)
                values = job_params(params, self.settings.default_params())  # 400 with the library's codes
                if params.webhook_url:
                    await run_in_threadpool(check_webhook, self.webhook_policy, params.webhook_url)
                async with self.probes:  # a bounded number of probe children at once
                    disk, vinfo = await run_in_threadpool(
                        check_media,
                        video,
                        audio,
                        self.settings.media_limits(),
                        values.get("sync_mode") or DEFAULT_SYNC_MODE,
                        self.settings.live_stream,
                    )
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
                earlier = self._enqueue(job, owner, tenant, key, fingerprint)
                if earlier is not None:  # made meanwhile by a concurrent retry
                    folder.remove()
                    return Received(earlier, replayed=True)
            except BaseException as exc:
                folder.remove()  # frees what a refused upload took
                if is_disk_full(exc):  # the upload's files or the job record did not fit
                    raise insufficient_storage("the data folder is full") from exc
                raise
        self.runner.submit(job)
        return Received(job, replayed=False)

    def _enqueue(
        self, job: Job, owner: str | None, tenant: str, key: str | None, fingerprint: str | None
    ) -> Job | None:
        """Inserts the job if the queue has room, one step with that last check; with an
        Idempotency-Key, ties the key to it first. Returns the job a concurrent request with
        the same key made instead, if any."""
        with self.queue.lock:
            if key is not None and fingerprint is not None:
                earlier = self.idempotency.claim(tenant, key, fingerprint, job.id)
                if earlier is not None:
                    return earlier
            try:
                self.queue.check(owner)
                self.store.insert(job)
            except BaseException:
                if key is not None and fingerprint is not None:
                    self.idempotency.release(tenant, key, job.id)
                raise
        return None


@dataclass(frozen=True)
class Received:
    job: Job
    replayed: bool  # an earlier request with the same Idempotency-Key made it (200, not 202)


def client_id(request: Request, owner: str | None) -> str:
    """Whose upload slots a request takes: its API key's, else (no keys) its address's."""
    if owner is not None:
        return f"key:{owner}"
    return f"addr:{request.client.host if request.client else 'unknown'}"


def probe_slots(setting: int) -> int:
    """Upload checks that may run probe children at once: the setting, or all cores but one."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return setting or max(1, cores - 1)
