"""Signed webhook deliveries, the Standard Webhooks scheme (https://www.standardwebhooks.com,
"Signature scheme": the one Svix and others use), so a receiver in any language can check
them with that spec's libraries as well as with :func:`verify_webhook`.

A delivery carries three headers:

- ``Webhook-Id``: the event's id, the same on every retry of that event (de-duplicate on it);
- ``Webhook-Timestamp``: Unix seconds when this attempt was signed;
- ``Webhook-Signature``: ``v1,<base64 HMAC-SHA256>`` (several, space-separated, while a
  secret is being rotated), the HMAC keyed by the secret over ``"{id}.{timestamp}.{body}"``
  (the raw body bytes as sent).

Signing the id and the timestamp with the body means a captured delivery cannot be replayed
under a new id or later than ``tolerance_s``. The secret is ``LATENTSYNC_WEBHOOK_SECRET``: a
``whsec_``-prefixed base64 key (the spec's form) is used as its decoded bytes, any other
string as its UTF-8 bytes.

The service signs with :func:`sign_webhook` (this module is the one definition of the scheme).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence

from latentsync_client.errors import WebhookVerificationError

ID_HEADER = "Webhook-Id"
TIMESTAMP_HEADER = "Webhook-Timestamp"
SIGNATURE_HEADER = "Webhook-Signature"
SCHEME = "v1"
Secret = str | bytes


def _key(secret: Secret) -> bytes:
    if isinstance(secret, bytes):
        key = secret
    elif secret.startswith("whsec_"):
        try:
            key = base64.b64decode(secret[len("whsec_") :], validate=True)
        except binascii.Error as exc:
            raise ValueError("a whsec_ secret must be base64 after its prefix") from exc
    else:
        key = secret.encode()
    if not key:
        raise ValueError("the webhook secret is empty")
    return key


def _as_bytes(body: bytes | str) -> bytes:
    return body.encode() if isinstance(body, str) else bytes(body)


def signature(secret: Secret, body: bytes | str, timestamp: int, event_id: str) -> str:
    """``v1,<base64>``: the signature of one delivery."""
    signed = f"{event_id}.{timestamp}.".encode() + _as_bytes(body)
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return f"{SCHEME},{base64.b64encode(digest).decode()}"


def sign_webhook(secret: Secret | Sequence[Secret], body: bytes | str, timestamp: int, event_id: str) -> dict[str, str]:
    """The headers to send with ``body``. Several secrets (rotation: new and old) give one
    signature each, so receivers holding either accept the delivery."""
    secrets = [secret] if isinstance(secret, (str, bytes)) else list(secret)
    return {
        ID_HEADER: event_id,
        TIMESTAMP_HEADER: str(int(timestamp)),
        SIGNATURE_HEADER: " ".join(signature(s, body, int(timestamp), event_id) for s in secrets),
    }


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:  # a plain dict: header names are case-insensitive
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    if not value:
        raise WebhookVerificationError("WEBHOOK_HEADER_MISSING", f"the {name} header is missing")
    return value


def verify_webhook(
    secret: Secret | Sequence[Secret],
    headers: Mapping[str, str],
    body: bytes | str,
    tolerance_s: float = 300,
    now: float | None = None,
) -> str:
    """Check a delivery; returns its event id (store it to drop re-deliveries).

    ``body`` must be the raw request body, before any JSON parsing. Raises
    :class:`~latentsync_client.errors.WebhookVerificationError` with code
    ``WEBHOOK_HEADER_MISSING``, ``WEBHOOK_TIMESTAMP_INVALID``, ``WEBHOOK_TIMESTAMP_STALE``
    (more than ``tolerance_s`` from ``now``, either way) or ``WEBHOOK_SIGNATURE_INVALID``.
    """
    event_id = _header(headers, ID_HEADER)
    raw_ts = _header(headers, TIMESTAMP_HEADER)
    sent = _header(headers, SIGNATURE_HEADER)
    try:
        timestamp = int(raw_ts)
    except ValueError as exc:
        raise WebhookVerificationError("WEBHOOK_TIMESTAMP_INVALID", f"{TIMESTAMP_HEADER} is not an integer") from exc
    skew = (time.time() if now is None else now) - timestamp
    if abs(skew) > tolerance_s:
        raise WebhookVerificationError(
            "WEBHOOK_TIMESTAMP_STALE", f"signed {skew:+.0f} s from now (tolerance {tolerance_s:g} s): a replay?"
        )
    secrets = [secret] if isinstance(secret, (str, bytes)) else list(secret)
    expected = [signature(s, body, timestamp, event_id).encode() for s in secrets]
    offered = [part.encode() for part in sent.split() if part.startswith(f"{SCHEME},")]
    # compare_digest against every pair: constant time per comparison, no early exit on a match
    matched = False
    for want in expected:
        for got in offered:
            matched |= hmac.compare_digest(want, got)
    if not matched:
        raise WebhookVerificationError("WEBHOOK_SIGNATURE_INVALID", "no signature matches this body and secret")
    return event_id
