"""A deadline for request bodies: a client that trickles its upload (one byte a second keeps
every per-read timeout happy) holds a queue slot, a job folder and a connection for as long
as it likes. Every body must arrive whole within ``body_timeout_s`` of the request's start;
after that the read fails with 408 ``BODY_TIMEOUT``, the route's clean-up runs (the partial
files go, the upload slot is released) and the connection is closed. A body that stops
moving (no bytes for ``idle_s``) ends the same way at once, as 408 ``BODY_IDLE_TIMEOUT``:
an idle upload must not hold its slot until the total deadline.

Pure ASGI (no BaseHTTPMiddleware, which would buffer and re-wrap the body)."""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.api.errors import APIError


class BodyTimeoutMiddleware:
    def __init__(self, app: ASGIApp, seconds: float, idle_s: float | None = None):
        self.app, self.seconds = app, seconds
        self.idle_s = seconds if idle_s is None else min(idle_s, seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds
        body_done = False

        async def timed_receive() -> Message:
            nonlocal body_done
            if body_done:  # later reads only wait for a disconnect: no deadline
                return await receive()
            idle_until = loop.time() + self.idle_s
            try:
                async with asyncio.timeout_at(min(deadline, idle_until)):
                    message = await receive()
            except TimeoutError:
                if idle_until < deadline:
                    message = f"the request body stopped: no bytes for {self.idle_s:g} s"
                    raise APIError(408, "BODY_IDLE_TIMEOUT", message, {"Connection": "close"}) from None
                message = f"the request body did not arrive within {self.seconds:g} s"
                raise APIError(408, "BODY_TIMEOUT", message, {"Connection": "close"}) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        await self.app(scope, timed_receive, send)
