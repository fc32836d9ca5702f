"""Job records in Redis, for many API nodes and worker hosts (Celery mode).

A :class:`~server.jobs.store.JobStore`, as the SQLite one; ``redis.RedisError`` leaves this
module as :class:`~server.jobs.store.StoreUnavailable`. Redis rather than PostgreSQL: it is already
there as the broker, the records are small documents read by id, and the only queries are
"by status, oldest first" (a sorted set per status) and counts. Durability is Redis's
(append-only file in docker-compose); a deployment that needs SQL reporting over years of
jobs would put them in PostgreSQL instead, behind this same interface.

Layout: ``<prefix>job:<id>`` a hash of JSON-encoded fields; ``<prefix>status:<status>`` a
sorted set of ids scored by creation time; ``<prefix>webhooks:owed`` a sorted set of the ids
whose end event is owed, scored by ``webhook_owed_since`` (changed in the same transaction as
the record); ``<prefix>idem:<sha256(tenant, key)>`` an
Idempotency-Key record (JSON), expiring by itself.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import redis

from server.jobs.idempotency import IdempotencyRecord
from server.jobs.model import FINAL, Job, JobStatus
from server.jobs.store import StoreUnavailable

_FIELDS = {f.name for f in dataclasses.fields(Job)}
P = ParamSpec("P")
R = TypeVar("R")


def _guarded(method: Callable[P, R]) -> Callable[P, R]:
    """Redis's errors (unreachable, timed out, ...) as :class:`StoreUnavailable`."""

    @functools.wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except redis.RedisError as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc

    return call


class RedisJobStore:
    shared = True  # every API node and worker host reads and writes the same records

    def __init__(self, url: str, prefix: str = "latentsync:"):
        self.redis = redis.Redis.from_url(url, decode_responses=True)
        self.prefix = prefix

    def _job(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    def _status(self, status: str) -> str:
        return f"{self.prefix}status:{status}"

    @property
    def _owed(self) -> str:
        return f"{self.prefix}webhooks:owed"

    def _mark_owed(self, pipe: redis.client.Pipeline, job_id: str, owed_since: object) -> None:
        if owed_since is None:
            pipe.zrem(self._owed, job_id)
        else:
            pipe.zadd(self._owed, {job_id: float(owed_since)})  # type: ignore[arg-type]

    def close(self) -> None:
        self.redis.close()

    @_guarded
    def insert(self, job: Job) -> None:
        row = {k: json.dumps(v) for k, v in dataclasses.asdict(job).items()}
        with self.redis.pipeline() as pipe:
            pipe.hset(self._job(job.id), mapping=row)
            pipe.zadd(self._status(job.status), {job.id: job.created_at})
            self._mark_owed(pipe, job.id, job.webhook_owed_since)
            pipe.execute()

    @_guarded
    def update(self, job_id: str, **fields: object) -> None:
        if not fields:
            return
        unknown = set(fields) - _FIELDS
        if unknown:
            raise ValueError(f"unknown job fields: {sorted(unknown)}")
        key = self._job(job_id)
        row = {k: json.dumps(v) for k, v in fields.items()}

        def change(pipe: redis.client.Pipeline) -> None:
            old = pipe.hmget(key, ["status", "created_at"])
            if old[0] is None:  # deleted meanwhile: nothing to update
                return
            pipe.multi()
            pipe.hset(key, mapping=row)
            if "status" in fields and json.loads(old[0]) != fields["status"]:
                pipe.zrem(self._status(json.loads(old[0])), job_id)
                pipe.zadd(self._status(fields["status"]), {job_id: json.loads(old[1])})
            if "webhook_owed_since" in fields:
                self._mark_owed(pipe, job_id, fields["webhook_owed_since"])

        self.redis.transaction(change, key)  # retried if another node changed the record meanwhile

    @_guarded
    def get(self, job_id: str) -> Job | None:
        row = self.redis.hgetall(self._job(job_id))
        if not row:
            return None
        return Job(**{k: json.loads(v) for k, v in row.items() if k in _FIELDS})

    @_guarded
    def delete(self, job_id: str) -> None:
        job = self.get(job_id)
        with self.redis.pipeline() as pipe:
            pipe.delete(self._job(job_id))
            if job is not None:
                pipe.zrem(self._status(job.status), job_id)
            pipe.zrem(self._owed, job_id)
            pipe.execute()

    def _ids(self, status: str) -> list[str]:
        return self.redis.zrange(self._status(status), 0, -1)

    def _jobs(self, ids: list[str]) -> list[Job]:
        return [job for job in (self.get(i) for i in ids) if job is not None]

    @_guarded
    def list(
        self, status: str | None = None, limit: int = 50, offset: int = 0, owner: str | None = None
    ) -> tuple[list[Job], int]:
        """Jobs, newest first; ``owner`` given: only that owner's."""
        ids = self._ids(status) if status else [i for s in JobStatus for i in self._ids(s)]
        jobs = [j for j in self._jobs(ids) if owner is None or j.owner == owner]
        jobs.sort(key=lambda j: (-j.created_at, j.id))
        return jobs[offset : offset + limit], len(jobs)

    @_guarded
    def queued_ids(self) -> list[str]:
        return self._ids(JobStatus.QUEUED)

    @_guarded
    def count(self, status: str) -> int:
        return self.redis.zcard(self._status(status))

    @_guarded
    def ids_with_status(self, status: str) -> list[str]:
        return self._ids(status)

    @_guarded
    def expired_results(self, before: float) -> list[Job]:
        ended = self._jobs([i for s in FINAL for i in self._ids(s)])
        return [j for j in ended if j.finished_at is not None and j.finished_at < before and not j.result_expired]

    @_guarded
    def purge_finished(self, before: float) -> list[Job]:
        ended = self._jobs([i for s in FINAL for i in self._ids(s)])
        old = [j for j in ended if j.finished_at is not None and j.finished_at < before]
        for job in old:
            self.delete(job.id)
        return old

    @_guarded
    def owed_webhooks(self, before: float) -> list[Job]:
        ids = self.redis.zrangebyscore(self._owed, "-inf", f"({before!r}")
        return [j for j in self._jobs(ids) if j.webhook_owed_since is not None]

    @_guarded
    def all_ids(self) -> set[str]:
        return {i for s in JobStatus for i in self._ids(s)}

    def check(self) -> str:
        try:
            return "ok" if self.redis.ping() else "no answer"
        except redis.RedisError as exc:
            return f"redis: {exc}"

    @_guarded
    def counts_by_status(self) -> dict[str, int]:
        return {s.value: self.count(s) for s in JobStatus}

    def _idem(self, tenant: str, key: str) -> str:
        digest = hashlib.sha256(json.dumps([tenant, key]).encode()).hexdigest()  # any key, a bounded name
        return f"{self.prefix}idem:{digest}"

    @_guarded
    def find_idempotency_key(self, tenant: str, key: str, ttl_s: float) -> IdempotencyRecord | None:
        raw = self.redis.get(self._idem(tenant, key))
        return IdempotencyRecord(**json.loads(raw)) if raw else None  # Redis expires it after ttl_s

    @_guarded
    def claim_idempotency_key(self, record: IdempotencyRecord, ttl_s: float) -> IdempotencyRecord | None:
        name = self._idem(record.tenant, record.key)
        value = json.dumps(dataclasses.asdict(record))
        for _ in range(3):  # the other record may expire between SET NX and GET
            if self.redis.set(name, value, nx=True, ex=max(1, math.ceil(ttl_s))):
                return None
            raw = self.redis.get(name)
            if raw:
                return IdempotencyRecord(**json.loads(raw))
        raise StoreUnavailable("redis: an Idempotency-Key record kept changing")

    @_guarded
    def release_idempotency_key(self, tenant: str, key: str, job_id: str) -> None:
        name = self._idem(tenant, key)

        def forget(pipe: redis.client.Pipeline) -> None:
            raw = pipe.get(name)
            pipe.multi()
            if raw and json.loads(raw)["job_id"] == job_id:
                pipe.delete(name)

        self.redis.transaction(forget, name)
