"""Idle uploads cannot starve the queue (issue 22 item 1): the attacks of the issue on a real
service, from raw sockets on loopback. An upload in flight holds no queue slot; each client
(API key, or address without keys) has a bounded number in flight; a body that stops moving
ends with 408 at once; one key cannot fill the queue for all."""

from __future__ import annotations

import re
import select
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.media_helpers import short_job_inputs
from tests.server_helpers import KEY, ServerProcess

KEY_B = "other-tenant-key"
IDLE_S = 3.0
ANSWER_WAIT_S = 45.0  # far below the total body deadline (300 s): only the idle timeout answers in time


@pytest.fixture(scope="module")
def inputs(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return short_job_inputs(media_dir, tmp_path_factory.mktemp("admission_inputs"))


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    srv = ServerProcess(
        tmp_path_factory.mktemp("keyed"),
        api_keys=f"{KEY},{KEY_B}",
        max_queue=3,
        max_uploads_per_client=2,
        max_queue_per_key=2,
        body_idle_s=IDLE_S,
    ).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def open_srv(tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    srv = ServerProcess(
        tmp_path_factory.mktemp("open"), api_keys="", max_uploads_per_client=1, body_idle_s=IDLE_S
    ).start()
    yield srv
    srv.stop()


class RawUpload:
    """A ``POST /lipsync`` that announces 10 MB, sends the headers and one part's head, then
    only what the test sends (nothing: idle; a byte now and then: slow)."""

    def __init__(self, srv: ServerProcess, key: str | None = KEY, source: str = "127.0.0.1"):
        self.sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10, source_address=(source, 0))
        auth = f"Authorization: Bearer {key}\r\n" if key else ""
        head = (
            f"POST /lipsync HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}"
            "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 10000000\r\n\r\n"
        )
        part = (
            b'--b\r\nContent-Disposition: form-data; name="video"; filename="v.mp4"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n"
        )
        self.sock.sendall(head.encode() + part)
        self.sent_at = time.monotonic()

    def answer(self, wait_s: float = ANSWER_WAIT_S) -> bytes:
        """The service's whole answer (head and body), or b"" when none began within ``wait_s``."""
        deadline = time.monotonic() + wait_s
        data = b""
        while True:
            head, _, body = data.partition(b"\r\n\r\n")
            if _:
                length = re.search(rb"(?i)content-length: *(\d+)", head)
                if length and len(body) >= int(length[1]):
                    return data
            readable, _, _ = select.select([self.sock], [], [], max(deadline - time.monotonic(), 0))
            chunk = self.sock.recv(65536) if readable else b""
            if not chunk:  # nothing in time, or the service closed the connection
                return data
            data += chunk
            deadline = max(deadline, time.monotonic() + 10)  # once it answers, the rest follows

    def close(self) -> None:
        self.sock.close()


class Trickle(threading.Thread):
    """Keeps uploads moving (a byte every 0.3 s: never idle) until stopped."""

    def __init__(self, uploads: list[RawUpload]):
        super().__init__(daemon=True)
        self.uploads, self.halt = uploads, threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.3):
            for upload in self.uploads:
                upload.sock.sendall(b"x")


def _folders(srv: ServerProcess) -> set[str]:
    return {p.name for p in (srv.data_dir / "jobs").iterdir()}


def _wait_folders(srv: ServerProcess, count: int, timeout: float = 30.0) -> None:
    """Until ``count`` job folders exist: the uploads were taken in and are being received."""
    deadline = time.monotonic() + timeout
    while len(_folders(srv)) < count:
        assert time.monotonic() < deadline, f"{len(_folders(srv))} job folders, expected {count}"
        time.sleep(0.05)


def _status_code(answer: bytes) -> tuple[int, bytes]:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer[9:12]), answer


def test_an_idle_upload_ends_with_408_at_once_whatever_the_total_deadline(keyed: ServerProcess) -> None:
    before = _folders(keyed)
    upload = RawUpload(keyed)
    try:
        answer = upload.answer()
        took = time.monotonic() - upload.sent_at
    finally:
        upload.close()
    status, raw = _status_code(answer)
    assert status == 408 and b'"BODY_IDLE_TIMEOUT"' in raw, raw[:300]
    assert IDLE_S <= took < ANSWER_WAIT_S, took
    assert _folders(keyed) == before  # the partial upload is gone


def test_uploads_in_flight_hold_no_queue_slot_and_are_bounded_per_key(
    keyed: ServerProcess, inputs: dict[str, Path]
) -> None:
    """Key A's slow uploads (as many as MAX_QUEUE) neither lock out key B nor take a third slot."""
    before = len(_folders(keyed))
    slow = [RawUpload(keyed), RawUpload(keyed)]
    trickle = Trickle(slow)
    trickle.start()
    extra = None
    try:
        _wait_folders(keyed, before + 2)
        extra = RawUpload(keyed)  # key A's third upload at once: over MAX_UPLOADS_PER_CLIENT=2
        status, raw = _status_code(extra.answer())
        assert status == 429 and b'"TOO_MANY_UPLOADS"' in raw and b"retry-after:" in raw.lower(), raw[:400]
        b = httpx.Client(base_url=keyed.base, headers={"Authorization": f"Bearer {KEY_B}"}, timeout=60)
        with open(inputs["video"], "rb") as v, open(inputs["audio"], "rb") as a:
            other = b.post("/lipsync", files={"video": ("v.mp4", v), "audio": ("a.wav", a)})
        assert other.status_code == 202, other.text  # before: 429 QUEUE_FULL with 0 jobs queued
        b.delete(f"/jobs/{other.json()['id']}")
        assert all(u.answer(0) == b"" for u in slow)  # moving uploads are not cut off
    finally:
        trickle.halt.set()
        trickle.join()
        if extra is not None:
            extra.close()
    for upload in slow:  # once they stop moving: 408 after IDLE_S
        status, raw = _status_code(upload.answer())
        assert status == 408 and b'"BODY_IDLE_TIMEOUT"' in raw, raw[:300]
        upload.close()


def test_one_key_cannot_fill_the_queue_for_all(keyed: ServerProcess, inputs: dict[str, Path]) -> None:
    """MAX_QUEUE=3, MAX_QUEUE_PER_KEY=2: key A's third waiting job is refused naming its quota
    (its running job does not count); key B still gets the last slot; then the queue is full
    for everyone."""
    b = httpx.Client(base_url=keyed.base, headers={"Authorization": f"Bearer {KEY_B}"}, timeout=60)

    def post(client: httpx.Client, **fields: object) -> httpx.Response:
        with open(inputs["video"], "rb") as v, open(inputs["audio"], "rb") as a:
            files = {"video": ("v.mp4", v), "audio": ("a.wav", a)}
            return client.post("/lipsync", files=files, data={k: str(x) for k, x in fields.items()})

    blocker = post(keyed.client, inference_steps=200).json()  # keeps the worker busy: the others wait
    keyed.wait(blocker["id"], {"running"})
    made: list[tuple[httpx.Client, httpx.Response]] = []
    try:
        for _ in range(2):
            made.append((keyed.client, post(keyed.client)))
            assert made[-1][1].status_code == 202, made[-1][1].text
        over = post(keyed.client)
        assert over.status_code == 429, over.text
        assert over.json()["error"]["code"] == "QUEUE_FULL" and "quota" in over.json()["error"]["message"]
        assert "is 2" in over.json()["error"]["message"] and int(over.headers["Retry-After"]) > 0
        made.append((b, post(b)))
        assert made[-1][1].status_code == 202, made[-1][1].text  # key B is not locked out by key A
        full = post(b)
        assert (full.status_code, full.json()["error"]["code"]) == (429, "QUEUE_FULL"), full.text
        assert "3 jobs are waiting" in full.json()["error"]["message"]
        assert keyed.client.get(f"/jobs/{blocker['id']}").json()["status"] == "running"  # all were queued
    finally:
        for owner, r in made:
            if r.status_code == 202:
                owner.delete(f"/jobs/{r.json()['id']}")
        keyed.client.delete(f"/jobs/{blocker['id']}")


def test_without_keys_uploads_in_flight_are_bounded_per_client_address(
    open_srv: ServerProcess, inputs: dict[str, Path]
) -> None:
    before = len(_folders(open_srv))
    slow = RawUpload(open_srv, key=None)
    trickle = Trickle([slow])
    trickle.start()
    second = None
    try:
        _wait_folders(open_srv, before + 1)
        second = RawUpload(open_srv, key=None)  # the same address: over MAX_UPLOADS_PER_CLIENT=1
        status, raw = _status_code(second.answer())
        assert status == 429 and b'"TOO_MANY_UPLOADS"' in raw, raw[:300]
        # Another address (127.0.0.2 is loopback too) is another client.
        other = httpx.Client(
            base_url=open_srv.base, transport=httpx.HTTPTransport(local_address="127.0.0.2"), timeout=60
        )
        with open(inputs["video"], "rb") as v, open(inputs["audio"], "rb") as a:
            r = other.post("/lipsync", files={"video": ("v.mp4", v), "audio": ("a.wav", a)})
        assert r.status_code == 202, r.text
        other.delete(f"/jobs/{r.json()['id']}")
    finally:
        trickle.halt.set()
        trickle.join()
        for upload in (slow, second):
            if upload is not None:
                upload.close()
