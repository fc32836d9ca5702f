"""``Idempotency-Key`` on ``POST /lipsync`` (issue 22 item 6): a retried submission is the same
job (200), the same key with another request is 409; records are per API key, kept in the
job store (real SQLite, real redis-server), so they survive a restart and hold across API
processes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server.jobs.idempotency import IdempotencyRecord, request_fingerprint
from server.jobs.redis_store import RedisJobStore
from server.jobs.sqlite_store import SQLiteJobStore
from server.jobs.store import JobStore
from tests.media_helpers import short_job_inputs
from tests.redis_helpers import redis_server
from tests.server_helpers import KEY, ServerProcess

KEY_B = "second-tenant-key"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(scope="module")
def inputs(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return short_job_inputs(media_dir, tmp_path_factory.mktemp("idem_inputs"))


# ---- the stores ----------------------------------------------------------------------------
def _record(job_id: str, tenant: str = "t1", key: str = "k", age_s: float = 0.0) -> IdempotencyRecord:
    return IdempotencyRecord(tenant, key, f"print-of-{job_id}", job_id, time.time() - age_s)


def _exercise(store: JobStore) -> None:
    assert store.find_idempotency_key("t1", "k", 3600) is None
    assert store.claim_idempotency_key(_record("job1"), 3600) is None  # claimed
    earlier = store.claim_idempotency_key(_record("job2"), 3600)  # the key names job1: nothing stored
    assert earlier is not None and earlier.job_id == "job1" and earlier.fingerprint == "print-of-job1"
    assert store.find_idempotency_key("t1", "k", 3600) == earlier
    assert store.claim_idempotency_key(_record("job3", tenant="t2"), 3600) is None  # keys are per tenant
    store.release_idempotency_key("t1", "k", "job2")  # not the job it names: kept
    assert store.find_idempotency_key("t1", "k", 3600).job_id == "job1"
    store.release_idempotency_key("t1", "k", "job1")
    assert store.find_idempotency_key("t1", "k", 3600) is None
    assert store.find_idempotency_key("t2", "k", 3600).job_id == "job3"
    odd = "ключ:with spaces/and\x00nul" * 10  # any key is a bounded, safe name in either store
    assert store.claim_idempotency_key(_record("job4", key=odd), 3600) is None
    assert store.find_idempotency_key("t1", odd, 3600).job_id == "job4"


def test_the_sqlite_store_keeps_one_record_per_tenant_and_key_across_restarts(tmp_path: Path) -> None:
    store = SQLiteJobStore(tmp_path / "jobs.sqlite3")
    _exercise(store)
    store.claim_idempotency_key(_record("old", key="stale", age_s=25 * 3600), 24 * 3600)
    store.close()
    store = SQLiteJobStore(tmp_path / "jobs.sqlite3")  # a restart
    assert store.find_idempotency_key("t2", "k", 3600).job_id == "job3"
    assert store.find_idempotency_key("t1", "stale", 24 * 3600) is None  # older than its TTL: absent
    assert store.claim_idempotency_key(_record("new", key="stale"), 24 * 3600) is None  # and claimable
    assert store.find_idempotency_key("t1", "stale", 24 * 3600).job_id == "new"
    store.close()


def test_the_redis_store_keeps_one_record_per_tenant_and_key_and_expires_it(redis_url: str) -> None:
    store = RedisJobStore(redis_url, prefix="idem-test:")
    _exercise(store)
    assert store.claim_idempotency_key(_record("brief", key="short"), 1) is None
    ttl = store.redis.ttl(store._idem("t1", "short"))
    assert 0 < ttl <= 1  # Redis expires it by itself
    time.sleep(1.2)
    assert store.find_idempotency_key("t1", "short", 1) is None
    store.close()


def test_the_fingerprint_is_of_the_bytes_and_fields_not_their_order() -> None:
    a = request_fingerprint({"video": "aa", "audio": "bb"}, {"seed": "5", "guidance_scale": "1.5"})
    b = request_fingerprint({"audio": "bb", "video": "aa"}, {"guidance_scale": "1.5", "seed": "5"})
    assert a == b
    assert a != request_fingerprint({"video": "aa", "audio": "bc"}, {"seed": "5", "guidance_scale": "1.5"})
    assert a != request_fingerprint({"video": "aa", "audio": "bb"}, {"seed": "6", "guidance_scale": "1.5"})


# ---- the service ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, inputs: dict[str, Path]) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path_factory.mktemp("idem_srv"), api_keys=f"{KEY},{KEY_B}", input_dirs=str(inputs["dir"]), max_queue=2
    ).start()
    yield server
    server.stop()


def _post(client: httpx.Client, inputs: dict[str, Path], key: str | None, **fields: object) -> httpx.Response:
    """A multipart POST as httpx makes it: a new random boundary every time."""
    headers = {"Idempotency-Key": key} if key is not None else {}
    with open(inputs["video"], "rb") as v, open(inputs["audio"], "rb") as a:
        files = {"video": ("v.mp4", v), "audio": ("a.wav", a)}
        return client.post("/lipsync", files=files, data={k: str(x) for k, x in fields.items()}, headers=headers)


def _total(client: httpx.Client) -> int:
    return client.get("/jobs", params={"limit": 1}).json()["total"]


def test_a_retry_is_the_same_job_and_another_request_with_its_key_is_409(
    srv: ServerProcess, inputs: dict[str, Path]
) -> None:
    blocker = _post(srv.client, inputs, None, inference_steps=200).json()  # the others stay queued
    srv.wait(blocker["id"], {"running"})
    before = _total(srv.client)
    first = _post(srv.client, inputs, "order-1", seed=5, guidance_scale=1.5)
    assert first.status_code == 202, first.text
    again = _post(srv.client, inputs, "order-1", guidance_scale=1.5, seed=5)  # other boundary, other order
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"] and again.headers["Location"] == f"/jobs/{first.json()['id']}"
    assert _total(srv.client) == before + 1  # one job, not two
    reused = _post(srv.client, inputs, "order-1", seed=6, guidance_scale=1.5)
    assert (reused.status_code, reused.json()["error"]["code"]) == (409, "IDEMPOTENCY_KEY_REUSED"), reused.text
    other_tenant = httpx.Client(base_url=srv.base, headers={"Authorization": f"Bearer {KEY_B}"}, timeout=60)
    theirs = _post(other_tenant, inputs, "order-1", seed=5, guidance_scale=1.5)  # keys are per API key
    assert theirs.status_code == 202 and theirs.json()["id"] != first.json()["id"], theirs.text
    # The queue is full now (MAX_QUEUE=2); a retry still gets its job, a new request 429.
    assert _post(srv.client, inputs, "order-2").json()["error"]["code"] == "QUEUE_FULL"
    retry = _post(srv.client, inputs, "order-1", seed=5, guidance_scale=1.5)
    assert retry.status_code == 200 and retry.json()["id"] == first.json()["id"], retry.text
    jobs_folder = srv.data_dir / "jobs"
    assert {p.name for p in jobs_folder.iterdir()} == {blocker["id"], first.json()["id"], theirs.json()["id"]}
    # A restart: the key still names the job.
    srv.terminate()
    srv.start()
    after = _post(srv.client, inputs, "order-1", seed=5, guidance_scale=1.5)
    assert after.status_code == 200 and after.json()["id"] == first.json()["id"], after.text
    for job_id in (first.json()["id"], blocker["id"]):
        srv.client.delete(f"/jobs/{job_id}")
    other_tenant.delete(f"/jobs/{theirs.json()['id']}")


def test_a_json_submission_is_idempotent_too_and_a_bad_key_is_400(srv: ServerProcess, inputs: dict[str, Path]) -> None:
    body = {"video_path": str(inputs["video"]), "audio_path": str(inputs["audio"]), "seed": 9}
    headers = {"Idempotency-Key": "json-1"}
    first = srv.client.post("/lipsync", json=body, headers=headers)
    assert first.status_code == 202, first.text
    again = srv.client.post("/lipsync", json=dict(reversed(body.items())), headers=headers)
    assert (again.status_code, again.json()["id"]) == (200, first.json()["id"]), again.text
    other = srv.client.post("/lipsync", json={**body, "seed": 10}, headers=headers)
    assert (other.status_code, other.json()["error"]["code"]) == (409, "IDEMPOTENCY_KEY_REUSED")
    bad = srv.client.post("/lipsync", json=body, headers={"Idempotency-Key": "x" * 256})
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "INVALID_IDEMPOTENCY_KEY"), bad.text
    srv.client.delete(f"/jobs/{first.json()['id']}")


def test_two_api_processes_on_one_redis_share_the_keys(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory, inputs: dict[str, Path]
) -> None:
    """Cluster mode without workers (jobs stay queued): a retry that reaches the other API node."""
    data = tmp_path_factory.mktemp("shared")
    one = ServerProcess(data, broker_url=redis_url).start()
    two = ServerProcess(data, broker_url=redis_url).start()
    try:
        first = _post(one.client, inputs, "cluster-1", seed=1)
        assert first.status_code == 202, first.text
        again = _post(two.client, inputs, "cluster-1", seed=1)
        assert (again.status_code, again.json()["id"]) == (200, first.json()["id"]), again.text
        other = _post(two.client, inputs, "cluster-1", seed=2)
        assert (other.status_code, other.json()["error"]["code"]) == (409, "IDEMPOTENCY_KEY_REUSED")
        one.client.delete(f"/jobs/{first.json()['id']}")
    finally:
        two.stop()
        one.stop()
