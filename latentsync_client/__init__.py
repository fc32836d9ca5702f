"""Python client of the LatentSync lip-sync service: submit a video and a speech track,
wait for the job, download the result; verify the service's signed webhooks.

Needs only httpx (tqdm, when installed, draws the progress bar); no torch, no numpy.

    from latentsync_client import Client

    with Client("http://gpu-host:8000", api_key="...") as client:
        job = client.submit("avatar.mp4", "speech.wav", seed=7)
        job = client.wait(job, timeout=600, progress=True)
        client.result(job, "out.mp4")
"""

from latentsync_client._rules import RetryPolicy
from latentsync_client._version import __version__
from latentsync_client.async_client import AsyncClient
from latentsync_client.client import Client
from latentsync_client.errors import (
    APIError,
    AuthenticationError,
    BadRequest,
    Conflict,
    Gone,
    InsufficientStorage,
    LatentSyncError,
    NotFound,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    TransportError,
    WaitTimeout,
    WebhookVerificationError,
)
from latentsync_client.models import FaceTracks, Job, JobError, JobList
from latentsync_client.webhooks import sign_webhook, verify_webhook

__all__ = [
    "APIError",
    "AsyncClient",
    "AuthenticationError",
    "BadRequest",
    "Client",
    "Conflict",
    "FaceTracks",
    "Gone",
    "InsufficientStorage",
    "Job",
    "JobError",
    "JobList",
    "LatentSyncError",
    "NotFound",
    "RateLimited",
    "RetryPolicy",
    "ServerError",
    "ServiceUnavailable",
    "TransportError",
    "WaitTimeout",
    "WebhookVerificationError",
    "__version__",
    "sign_webhook",
    "verify_webhook",
]
