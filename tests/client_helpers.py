"""A real HTTP proxy on loopback in front of a real service, for the client tests: it
forwards every request, except those its script tells it to answer otherwise (a 429 with
Retry-After before forwarding, a response cut off mid-body), and records what it saw."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    answered: int = 0
    response: bytes = b""  # the upstream's body, whole (even when the proxy cut it off)


@dataclass
class Script:
    """``throttle[n]``: answer the n-th matching request (0-based) 429 with this Retry-After.
    ``cut_after``: the first forwarded response to a matching request stops after that many
    body bytes (headers promised the whole)."""

    matches: Callable[[str, str], bool] = lambda method, path: False
    throttle: dict[int, str] = field(default_factory=dict)
    cut_after: int | None = None
    matched: int = 0
    cut_done: bool = False


class ScriptedProxy:
    def __init__(self, upstream: str):
        self.upstream = upstream
        self.script = Script()
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time())
                with proxy._lock:
                    proxy.seen.append(seen)
                    script = proxy.script
                    hit = script.matches(self.command, self.path)
                    index = script.matched
                    if hit:
                        script.matched += 1
                if hit and index in script.throttle:
                    seen.answered = 429
                    payload = b'{"error": {"code": "QUEUE_FULL", "message": "scripted: the queue is full"}}'
                    self.send_response(429)
                    self.send_header("Retry-After", script.throttle[index])
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                resp = httpx.request(
                    self.command, proxy.upstream + self.path, headers=headers, content=body, timeout=120
                )
                seen.answered, seen.response = resp.status_code, resp.content
                cut = hit and script.cut_after is not None and not script.cut_done and len(resp.content) > 0
                self.send_response(resp.status_code)
                for k, v in resp.headers.items():
                    if k.lower() not in HOP_BY_HOP:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(resp.content)))
                if cut:
                    script.cut_done = True
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(resp.content[: script.cut_after])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.end_headers()
                self.wfile.write(resp.content)

            do_GET = do_POST = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> ScriptedProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def requests(self, method: str, path_prefix: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.method == method and s.path.startswith(path_prefix)]
