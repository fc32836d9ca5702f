"""Webhook signatures (latentsync_client.webhooks): the Standard Webhooks scheme, checked
against the spec's own example, and a real loopback receiver verifying a signed POST."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from latentsync_client import WebhookVerificationError, sign_webhook, verify_webhook

SECRET = "a-shared-secret-only-the-two-sides-know"
BODY = json.dumps({"event": "job.finished", "job": {"id": "abc", "status": "succeeded"}}).encode()
NOW = 1_750_000_000


def _signed(secret: str = SECRET, body: bytes = BODY, at: int = NOW, event_id: str = "evt_1") -> dict[str, str]:
    return sign_webhook(secret, body, at, event_id)


def test_the_standard_webhooks_example_signature() -> None:
    """The example of the Standard Webhooks specification (its secret, id, timestamp and
    payload): a receiver using that spec's libraries accepts what the service sends."""
    headers = sign_webhook(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", '{"test": 2432232314}', 1614265330, "msg_p5jXN8AQM9LWM0D4loKWxJek"
    )
    assert headers == {
        "Webhook-Id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "Webhook-Timestamp": "1614265330",
        "Webhook-Signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }


def test_sign_then_verify_returns_the_event_id() -> None:
    assert verify_webhook(SECRET, _signed(), BODY, now=NOW + 299) == "evt_1"
    lowered = {k.lower(): v for k, v in _signed().items()}  # header names are case-insensitive
    assert verify_webhook(SECRET, lowered, BODY.decode(), now=NOW) == "evt_1"


@pytest.mark.parametrize(
    ("headers", "body", "now", "code"),
    [
        (_signed(), BODY.replace(b"succeeded", b"failed"), NOW, "WEBHOOK_SIGNATURE_INVALID"),
        (_signed(), BODY + b" ", NOW, "WEBHOOK_SIGNATURE_INVALID"),
        (_signed(secret="another-secret"), BODY, NOW, "WEBHOOK_SIGNATURE_INVALID"),
        ({**_signed(), "Webhook-Id": "evt_2"}, BODY, NOW, "WEBHOOK_SIGNATURE_INVALID"),  # id swapped
        ({**_signed(), "Webhook-Timestamp": str(NOW + 1)}, BODY, NOW, "WEBHOOK_SIGNATURE_INVALID"),
        (_signed(), BODY, NOW + 301, "WEBHOOK_TIMESTAMP_STALE"),  # an old delivery replayed
        (_signed(), BODY, NOW - 301, "WEBHOOK_TIMESTAMP_STALE"),  # from the future
        ({**_signed(), "Webhook-Timestamp": "yesterday"}, BODY, NOW, "WEBHOOK_TIMESTAMP_INVALID"),
        ({k: v for k, v in _signed().items() if k != "Webhook-Signature"}, BODY, NOW, "WEBHOOK_HEADER_MISSING"),
        ({k: v for k, v in _signed().items() if k != "Webhook-Id"}, BODY, NOW, "WEBHOOK_HEADER_MISSING"),
        ({**_signed(), "Webhook-Signature": "v0,abc"}, BODY, NOW, "WEBHOOK_SIGNATURE_INVALID"),
    ],
)
def test_tampered_forged_stale_or_incomplete_deliveries_are_rejected(
    headers: dict[str, str], body: bytes, now: int, code: str
) -> None:
    with pytest.raises(WebhookVerificationError) as refused:
        verify_webhook(SECRET, headers, body, tolerance_s=300, now=now)
    assert refused.value.code == code


def test_secret_rotation_signs_with_both_and_either_verifies() -> None:
    headers = sign_webhook(["new-secret", "old-secret"], BODY, NOW, "evt_9")
    assert len(headers["Webhook-Signature"].split()) == 2
    assert verify_webhook("old-secret", headers, BODY, now=NOW) == "evt_9"
    assert verify_webhook(["new-secret"], headers, BODY, now=NOW) == "evt_9"
    with pytest.raises(WebhookVerificationError):
        verify_webhook("third-secret", headers, BODY, now=NOW)


def test_bad_secrets_are_refused_up_front() -> None:
    with pytest.raises(ValueError, match="empty"):
        sign_webhook("", BODY, NOW, "evt")
    with pytest.raises(ValueError, match="base64"):
        sign_webhook("whsec_not base64!", BODY, NOW, "evt")


def test_a_loopback_receiver_verifies_a_signed_post() -> None:
    """The README's receiver, for real: the raw body and the request's headers go to
    verify_webhook; a forged delivery gets 400."""
    accepted: list[str] = []

    class Receiver(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            try:
                accepted.append(verify_webhook(SECRET, self.headers, body))
                self.send_response(204)
            except WebhookVerificationError as exc:
                self.send_response(400, exc.code)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        now = int(time.time())
        good = httpx.post(
            url, content=BODY, headers={**sign_webhook(SECRET, BODY, now, "evt_7"), "Content-Type": "application/json"}
        )
        forged = httpx.post(url, content=BODY, headers=sign_webhook("guess", BODY, now, "evt_8"))
        stale = httpx.post(url, content=BODY, headers=sign_webhook(SECRET, BODY, now - 3600, "evt_9"))
    finally:
        server.shutdown()
        server.server_close()
    assert (good.status_code, forged.status_code, stale.status_code) == (204, 400, 400)
    assert forged.reason_phrase == "WEBHOOK_SIGNATURE_INVALID" and stale.reason_phrase == "WEBHOOK_TIMESTAMP_STALE"
    assert accepted == ["evt_7"]
