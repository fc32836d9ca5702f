"""The client's exceptions: every one carries a stable ``code``, a human ``message`` and,
when the service answered, its HTTP ``status``.

Codes from the service are its own (``QUEUE_FULL``, ``JOB_NOT_FOUND``, ...: the
``{"error": {"code", "message"}}`` body of every API error); codes the client makes up
itself are ``CONNECTION_ERROR``, ``WAIT_TIMEOUT``, ``DOWNLOAD_INCOMPLETE``,
``NOT_REWINDABLE``, ``INVALID_RESPONSE`` and the ``WEBHOOK_*`` codes of :mod:`.webhooks`.
"""

from __future__ import annotations

from collections.abc import Mapping


class LatentSyncError(Exception):
    """Base of every error the client raises."""

    def __init__(self, code: str, message: str, status: int | None = None):
        super().__init__(f"[{code}] {message}")
        self.code, self.message, self.status = code, message, status


class APIError(LatentSyncError):
    """The service answered with an error (status >= 400)."""

    def __init__(self, code: str, message: str, status: int, headers: Mapping[str, str] | None = None):
        super().__init__(code, message, status)
        self.headers: dict[str, str] = {k.lower(): v for k, v in (headers or {}).items()}


class BadRequest(APIError):
    """400, 413, 415, 422: the request or its media were refused (fix the input, do not retry)."""


class AuthenticationError(APIError):
    """401 or 403: missing, wrong or insufficient API key."""


class NotFound(APIError):
    """404: no such job (or not yours)."""


class Conflict(APIError):
    """409: e.g. ``NOT_READY`` (the result of an unfinished job) or an Idempotency-Key reused
    with another body."""


class Gone(APIError):
    """410: the result was removed after its retention time."""


class RateLimited(APIError):
    """429: the queue is full (``QUEUE_FULL``); raised once the client's retries are spent."""


class ServiceUnavailable(APIError):
    """503: shutting down, not ready, or its store is unavailable; raised once retries are spent."""


class InsufficientStorage(APIError):
    """507: the service's data folder is full."""


class ServerError(APIError):
    """Any other 5xx."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequest,
    401: AuthenticationError,
    403: AuthenticationError,
    404: NotFound,
    409: Conflict,
    410: Gone,
    413: BadRequest,
    415: BadRequest,
    422: BadRequest,
    429: RateLimited,
    503: ServiceUnavailable,
    507: InsufficientStorage,
}


def api_error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> APIError:
    """The exception class for ``status``, carrying the service's code and message."""
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else APIError)
    return cls(code, message, status, headers)


class TransportError(LatentSyncError):
    """The service could not be reached (or the connection broke), retries included."""

    def __init__(self, message: str):
        super().__init__("CONNECTION_ERROR", message)


class WaitTimeout(LatentSyncError):
    """``wait`` ran out of time; the job goes on on the service. ``job`` is its last state."""

    def __init__(self, message: str, job: object | None = None):
        super().__init__("WAIT_TIMEOUT", message)
        self.job = job


class WebhookVerificationError(LatentSyncError):
    """A webhook delivery failed verification; ``code`` says why (see :mod:`.webhooks`)."""
