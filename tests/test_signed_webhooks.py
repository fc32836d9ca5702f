"""Signed webhooks (issue 24 item 3), the service's side: with LATENTSYNC_WEBHOOK_SECRET set,
a real job's delivery verifies with the client's ``verify_webhook`` and fails with a wrong
secret; retries of one event carry the same id and the same body bytes, each attempt signed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from latentsync_client import WebhookVerificationError, verify_webhook
from server.jobs.webhooks import WebhookSender
from tests.media_helpers import short_job_inputs
from tests.server_helpers import ServerProcess
from tests.webhook_helpers import Receiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the Standard Webhooks form: whsec_ + base64


def test_retries_of_one_event_keep_its_id_and_body_and_are_each_signed() -> None:
    receiver = Receiver(statuses=[503])  # the first attempt fails: the sender retries after 1 s
    loop = asyncio.new_event_loop()
    try:
        sender = WebhookSender(loop, timeout=10, retries=2, allow=["127.0.0.1"], secret=SECRET)
        payload = {"event": "job.finished", "job": {"id": "j1", "status": "succeeded", "name": "ünïcode"}}
        assert loop.run_until_complete(sender.deliver(receiver.url, payload, "evt_j1_succeeded")) is True
    finally:
        loop.close()
        receiver.close()
    (first_headers, first_body), (second_headers, second_body) = receiver.deliveries
    assert first_body == second_body and json.loads(first_body) == payload
    for headers, body in receiver.deliveries:
        assert headers["Content-Type"] == "application/json"
        assert verify_webhook(SECRET, headers, body) == "evt_j1_succeeded"
    assert first_headers["Webhook-Id"] == second_headers["Webhook-Id"]


def test_without_a_secret_deliveries_still_carry_the_event_id_but_no_signature() -> None:
    receiver = Receiver()
    loop = asyncio.new_event_loop()
    try:
        sender = WebhookSender(loop, timeout=10, retries=1, allow=["127.0.0.1"])
        assert loop.run_until_complete(sender.deliver(receiver.url, {"event": "x"}, "evt_1")) is True
    finally:
        loop.close()
        receiver.close()
    headers, _ = receiver.deliveries[0]
    assert headers["Webhook-Id"] == "evt_1" and int(headers["Webhook-Timestamp"]) > 0
    assert "Webhook-Signature" not in headers


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    srv = ServerProcess(tmp_path_factory.mktemp("srv"), webhook_secret=SECRET, webhook_allow_hosts="127.0.0.1").start()
    yield srv
    srv.stop()


def test_a_real_jobs_delivery_verifies_with_the_secret_and_not_with_another(
    server: ServerProcess, media_dir: Path, tmp_path: Path
) -> None:
    inputs = short_job_inputs(media_dir, tmp_path)
    receiver = Receiver()
    try:
        job = server.post_files(inputs["video"], inputs["audio"], webhook_url=receiver.url).json()
        assert server.wait(job["id"], {"succeeded", "failed"})["status"] == "succeeded"
        receiver.wait(1)
    finally:
        receiver.close()
    headers, body = receiver.deliveries[0]
    assert verify_webhook(SECRET, headers, body) == f"evt_{job['id']}_succeeded"
    delivered = json.loads(body)
    assert delivered["event"] == "job.finished" and delivered["job"]["id"] == job["id"]
    assert delivered["job"]["status"] == "succeeded"
    with pytest.raises(WebhookVerificationError) as wrong:
        verify_webhook("whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB", headers, body)
    assert wrong.value.code == "WEBHOOK_SIGNATURE_INVALID"
    with pytest.raises(WebhookVerificationError):  # a body changed on the way
        verify_webhook(SECRET, headers, body.replace(b"succeeded", b"failed"))
