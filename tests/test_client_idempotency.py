"""The client's Idempotency-Key against the real service (issue 22 item 6): the same key and
the same request within 24 h -> the same job (200); the same key with another request -> 409.
The client sends one key per submit() and a multipart boundary fixed by that key, so its
retries are byte-identical (the service fingerprints files and fields, not the raw body)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from latentsync_client import Client, Conflict, RetryPolicy
from tests.client_helpers import ScriptedProxy
from tests.media_helpers import short_job_inputs
from tests.server_helpers import KEY, ServerProcess


@pytest.fixture(scope="module")
def inputs(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return short_job_inputs(media_dir, tmp_path_factory.mktemp("idem_inputs"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    srv = ServerProcess(tmp_path_factory.mktemp("idem_srv"), max_upload_mb=3, max_video_s=5).start()
    yield srv
    srv.stop()


def test_a_submit_whose_answer_was_lost_is_retried_into_the_same_job(
    server: ServerProcess, inputs: dict[str, Path]
) -> None:
    before = server.client.get("/jobs", params={"limit": 1}).json()["total"]
    retry = RetryPolicy(retries=2, backoff_s=0.05, max_backoff_s=0.1)
    with ScriptedProxy(server.base) as proxy, Client(proxy.base, api_key=KEY, retry=retry) as client:
        proxy.script.matches = lambda method, path: (method, path) == ("POST", "/lipsync")
        proxy.script.cut_after = 5  # the job is made, its answer breaks off: the client retries
        job = client.submit(inputs["video"], inputs["audio"], seed=3)
    first, second = proxy.requests("POST", "/lipsync")
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"] and first.body == second.body
    assert first.answered == 202 and second.answered == 200
    assert job.id == json.loads(first.response)["id"] == json.loads(second.response)["id"]
    assert server.client.get("/jobs", params={"limit": 1}).json()["total"] == before + 1  # one job, not two
    server.client.delete(f"/jobs/{job.id}")


def test_the_same_key_with_the_same_body_is_the_same_job_and_with_another_body_409(
    server: ServerProcess, inputs: dict[str, Path]
) -> None:
    with Client(server.base, api_key=KEY) as client:
        first = client.submit(inputs["video"], inputs["audio"], seed=5, idempotency_key="order-42")
        again = client.submit(inputs["video"], inputs["audio"], seed=5, idempotency_key="order-42")
        assert again.id == first.id
        with pytest.raises(Conflict) as reused:
            client.submit(inputs["video"], inputs["audio"], seed=6, idempotency_key="order-42")
        assert reused.value.status == 409 and reused.value.code
        other = client.submit(inputs["video"], inputs["audio"], seed=5, idempotency_key="order-43")
        assert other.id != first.id
        for job in (first, other):
            client.delete(job, timeout=240)
