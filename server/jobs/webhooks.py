"""Webhooks: a POST with the finished job, retried with back-off, never blocking a job.

A webhook URL is the client's, so it must not reach the server's own network (SSRF): hosts
that resolve to loopback, private, link-local (cloud metadata), multicast, reserved or
unspecified addresses are refused, at submission (400 ``WEBHOOK_NOT_ALLOWED``) and again at
send time, unless ``LATENTSYNC_WEBHOOK_ALLOW_HOSTS`` names the host or a network holding the
address. At send time the name is resolved once, every address is checked, and the
connection goes to a checked address (the URL's host stays in the Host header and the TLS
SNI / certificate check), so a DNS answer that changes in between cannot redirect it.
Redirects are not followed, proxies from the environment are not used, at most
``MAX_RESPONSE_BYTES`` of a response are read, and logged URLs never show credentials.

Every delivery carries ``Webhook-Id`` (the event's id: the same on every retry, so receivers
drop duplicates) and ``Webhook-Timestamp``; with ``LATENTSYNC_WEBHOOK_SECRET`` set, also
``Webhook-Signature``, the Standard Webhooks HMAC made by the client package's
``sign_webhook`` (the one definition of the scheme; receivers check it with
``verify_webhook``). The body is serialized once and sent as exactly those bytes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import json
import logging
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict
from urllib.parse import urlsplit, urlunsplit

import httpx

from latentsync_client.webhooks import ID_HEADER, TIMESTAMP_HEADER, sign_webhook
from server.jobs.model import Job

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 64 * 1024
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class WebhookRefused(ValueError):
    """The URL may not be called: the message says why (no credentials in it)."""


def redact(url: str) -> str:
    """``url`` without the password of its user-info (``user:***@host``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    if "@" not in parts.netloc:
        return url
    userinfo, hostport = parts.netloc.rsplit("@", 1)
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostport}" if ":" in userinfo else f"***@{hostport}"))


def _forbidden(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


class WebhookPolicy:
    """Which webhook targets are allowed. ``allow``: host names (exact, case-insensitive) and
    CIDRs (``10.0.0.0/8``, ``127.0.0.1``) that may be called although not public."""

    def __init__(self, allow: Iterable[str] = ()):
        self.hosts: set[str] = set()
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for item in allow:
            try:
                self.networks.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError:
                self.hosts.add(item.strip().lower().rstrip("."))

    def target(self, url: str) -> tuple[str, int]:
        """(host, port) of an http(s) URL, refusing what can never be a webhook."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise WebhookRefused(f"invalid URL ({exc})") from exc
        if parts.scheme not in ("http", "https"):
            raise WebhookRefused("only http and https URLs")
        if not parts.hostname:
            raise WebhookRefused("the URL has no host")
        if port == 0:
            raise WebhookRefused("port 0")
        return parts.hostname.lower().rstrip("."), port or (443 if parts.scheme == "https" else 80)

    def check(self, host: str, addresses: Iterable[IPAddress]) -> list[IPAddress]:
        """The addresses, if every one of them may be called; else :class:`WebhookRefused`."""
        addresses = list(addresses)
        if not addresses:
            raise WebhookRefused(f"{host} has no address")
        if host in self.hosts:
            return addresses
        for ip in addresses:
            if _forbidden(ip) and not any(ip in net for net in self.networks if net.version == ip.version):
                raise WebhookRefused(f"{host} resolves to a non-public address ({ip}); see WEBHOOK_ALLOW_HOSTS")
        return addresses

    def resolve(self, url: str) -> tuple[str, int, list[IPAddress]]:
        """Blocking (DNS): check ``url`` as a submission does. Returns the checked addresses."""
        host, port = self.target(url)
        return host, port, self.check(host, _literal(host) or _getaddrinfo(host, port))

    async def resolve_async(self, url: str) -> tuple[str, int, list[IPAddress]]:
        host, port = self.target(url)
        addresses = _literal(host)
        if not addresses:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise WebhookRefused(f"cannot resolve {host}") from exc
            addresses = _unique(info[4][0] for info in infos)
        return host, port, self.check(host, addresses)


def _literal(host: str) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        return []


def _unique(raw: Iterable[str]) -> list[IPAddress]:
    out: list[IPAddress] = []
    for text in raw:
        ip = ipaddress.ip_address(text.split("%", 1)[0])  # no scope ids
        if ip not in out:
            out.append(ip)
    return out


def _getaddrinfo(host: str, port: int) -> list[IPAddress]:
    try:
        return _unique(info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
    except OSError as exc:
        raise WebhookRefused(f"cannot resolve {host}") from exc


class WebhookSender:
    """Sends from the event loop; ``send`` may be called from any thread. ``allow`` is the
    allow-list of :class:`WebhookPolicy` (the send-time check); ``secret`` (empty: unsigned)
    signs every delivery."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        timeout: float = 10.0,
        retries: int = 3,
        allow: Iterable[str] = (),
        secret: str = "",
    ):
        self._loop, self._timeout, self._retries = loop, timeout, retries
        self.policy = WebhookPolicy(allow)
        self._secret = secret
        self._tasks: set[concurrent.futures.Future] = set()

    def send(self, url: str, job: Job, settle: Callable[[bool], None] | None = None) -> None:
        """Deliver ``job``'s end event; ``settle`` (when given) is then called with the outcome,
        in a worker thread (it writes the record: not on the event loop)."""
        future = asyncio.run_coroutine_threadsafe(self._send(url, job, settle), self._loop)
        self._tasks.add(future)
        future.add_done_callback(self._tasks.discard)

    async def _send(self, url: str, job: Job, settle: Callable[[bool], None] | None) -> None:
        delivered = await self.deliver(url, payload(job), event_id(job))
        if settle is not None:
            await asyncio.to_thread(settle, delivered)

    def longest_delivery_s(self) -> float:
        """What one delivery can take at most: every attempt timing out, with the back-off
        pauses between them (1 s, doubling; ``deliver``). A shutdown waits this long at most."""
        return self._retries * self._timeout + (2 ** max(self._retries - 1, 0) - 1)

    def flush(self, timeout: float) -> None:
        """Wait (from another thread than the loop's) for the webhooks in flight."""
        concurrent.futures.wait(list(self._tasks), timeout=timeout)

    def headers(self, body: bytes, event: str) -> dict[str, str]:
        """The event headers of one attempt, signed now when there is a secret."""
        now = int(time.time())
        if self._secret:
            return sign_webhook(self._secret, body, now, event)
        return {ID_HEADER: event, TIMESTAMP_HEADER: str(now)}

    async def deliver(self, url: str, body: dict | bytes, event: str | None = None) -> bool:
        """POST ``body`` (serialized here once: every attempt sends these bytes) to ``url`` with
        retries, as event ``event`` (default: a new id); True once the receiver answered below 500."""
        if isinstance(body, dict):
            body = json.dumps(body, separators=(",", ":")).encode()
        event = event or f"evt_{uuid.uuid4().hex}"
        shown = redact(url)
        delay = 1.0
        for attempt in range(1, self._retries + 1):
            try:
                host, _, addresses = await self.policy.resolve_async(url)
            except WebhookRefused as exc:
                log.warning("webhook %s refused: %s", shown, exc)
                return False
            try:
                status = await self._post_pinned(url, host, addresses, body, self.headers(body, event))
                if status < 500:
                    return True
                log.warning("webhook %s attempt %d: HTTP %d", shown, attempt, status)
            except httpx.HTTPError as exc:
                log.warning("webhook %s attempt %d failed: %s", shown, attempt, type(exc).__name__)
            if attempt < self._retries:
                await asyncio.sleep(delay)
                delay *= 2
        return False

    async def _post_pinned(
        self, url: str, host: str, addresses: list[IPAddress], body: bytes, headers: dict[str, str]
    ) -> int:
        """Connect to a checked address (the next one when a connection is refused), keep the
        URL's host for the Host header and TLS, read at most MAX_RESPONSE_BYTES."""
        original = httpx.URL(url)
        host_header = original.netloc.decode("ascii").rsplit("@", 1)[-1]
        extensions = {"sni_hostname": host} if original.scheme == "https" else {}
        async with httpx.AsyncClient(timeout=self._timeout, follow_redirects=False, trust_env=False) as client:
            for i, ip in enumerate(addresses):
                pinned = original.copy_with(host=str(ip))
                try:
                    sent = {"Host": host_header, "Content-Type": "application/json", **headers}
                    async with client.stream("POST", pinned, content=body, headers=sent, extensions=extensions) as resp:
                        read = 0
                        async for chunk in resp.aiter_raw():
                            read += len(chunk)
                            if read >= MAX_RESPONSE_BYTES:
                                break  # leaving the block closes the connection
                        return resp.status_code
                except httpx.ConnectError:
                    if i == len(addresses) - 1:
                        raise
        raise httpx.ConnectError("no address")


_HIDDEN = ("work_dir", "owner", "webhook_owed_since", "webhook_outcome")  # the delivery's own bookkeeping too


def payload(job: Job) -> dict:
    """The job as its webhook shows it: no server-side paths, no owner, nothing that changes
    between a delivery and its re-send (``owed_webhooks.py``)."""
    fields = {k: v for k, v in asdict(job).items() if not k.endswith("_path") and k not in _HIDDEN}
    return {"event": "job.finished", "job": fields}


def event_id(job: Job) -> str:
    """The id of a job's end event: the same on every retry and from every process (a job
    ends once), so a receiver can drop a delivery it has seen."""
    return f"evt_{job.id}_{job.status}"
