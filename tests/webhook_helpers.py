"""A loopback webhook receiver for the tests of webhook delivery."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """Keeps each delivery's headers and raw body; answers ``statuses`` in turn (then 204).
    ``port``: a fixed port (a receiver brought up where an earlier one was), else any free one."""

    def __init__(self, statuses: list[int] | None = None, port: int = 0):
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        answers = list(statuses or [])
        received = self.deliveries

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((dict(self.headers.items()), body))
                self.send_response(answers.pop(0) if answers else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, count: int, timeout: float = 30) -> None:
        deadline = time.time() + timeout
        while len(self.deliveries) < count and time.time() < deadline:
            time.sleep(0.05)
        assert len(self.deliveries) >= count, self.deliveries

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
