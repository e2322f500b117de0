"""Bearer-token authentication (``AIOPS_API_TOKEN``) as one pure ASGI middleware.

Every HTTP route and the WebSocket need the token, except the public paths (the datasource
health check and ``/metrics``). HTTP sends ``Authorization: Bearer <token>``; a WebSocket may
send that header or ``?token=<token>`` (browsers cannot set headers on a WebSocket). Tokens
are compared with :func:`hmac.compare_digest`. Without a configured token authentication is
off, which :func:`aiops.api.server.run_api` allows on loopback addresses only.

Guessing is throttled per client address (:class:`FailureLimit`): after ``limit`` wrong or
missing tokens within ``window`` seconds the client gets ``429`` with ``Retry-After`` (the
token is not even compared meanwhile) and one warning is logged. The table of clients is an
LRU of at most ``max_clients`` entries, so a flood of addresses cannot exhaust memory. Behind
a reverse proxy every request comes from the proxy's address: throttle there too.
"""

from __future__ import annotations

import hmac
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from aiops.api.errors import JSONResponse, dumps

__all__ = ["AuthMiddleware", "FailureLimit", "token_matches", "is_loopback"]

log = logging.getLogger(__name__)

WS_POLICY_VIOLATION = 1008


@dataclass
class _Client:
    failures: int = 0
    window_start: float = 0.0
    blocked_until: float = 0.0


@dataclass
class FailureLimit:
    """Per-client budget of authentication failures: ``limit`` per ``window`` seconds, then
    refused for the rest of the window (at least ``window`` seconds after the last allowed
    failure). At most ``max_clients`` clients are remembered (least recently seen dropped)."""

    limit: int = 10
    window: float = 60.0
    max_clients: int = 10_000
    clock: Callable[[], float] = time.monotonic
    _clients: OrderedDict[str, _Client] = field(default_factory=OrderedDict, repr=False)

    def retry_after(self, client: str) -> float:
        """Seconds ``client`` must wait before its token is looked at again (0: go ahead)."""
        entry = self._clients.get(client)
        if entry is None:
            return 0.0
        left = entry.blocked_until - self.clock()
        return left if left > 0 else 0.0

    def failed(self, client: str) -> bool:
        """Count a failure; True when it used up the budget (the client is now refused)."""
        now = self.clock()
        entry = self._clients.pop(client, None)
        if entry is None or now - entry.window_start >= self.window:
            entry = _Client(window_start=now)
        entry.failures += 1
        self._clients[client] = entry  # most recently seen last
        while len(self._clients) > self.max_clients:
            self._clients.popitem(last=False)
        if entry.failures >= self.limit:
            entry.blocked_until = now + self.window
            entry.failures, entry.window_start = 0, entry.blocked_until
            return True
        return False

    def succeeded(self, client: str) -> None:
        self._clients.pop(client, None)

    def __len__(self) -> int:
        return len(self._clients)


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def token_matches(expected: bytes, presented: str | bytes | None) -> bool:
    if presented is None:
        return False
    if isinstance(presented, str):
        presented = presented.encode("utf-8", "surrogateescape")
    return hmac.compare_digest(expected, presented)


def _bearer(scope: Scope) -> bytes | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, credentials = value.partition(b" ")
            if scheme.lower() == b"bearer":
                return credentials.strip()
            return b""
    return None


def _query_token(scope: Scope) -> str | None:
    raw = scope.get("query_string", b"").decode("latin-1")
    if "token=" not in raw:
        return None
    for key, value in parse_qsl(raw, keep_blank_values=True):
        if key == "token":
            return value
    return None


class AuthMiddleware:
    """Refuse requests without the right token: 401 JSON (HTTP) or a refused handshake (WS)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None,
        public_paths: Iterable[str],
        failures: FailureLimit | None = None,
    ) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.public = frozenset(public_paths)
        self.failures = failures if failures is not None else FailureLimit()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token is None or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "http" and scope["path"] in self.public:
            await self.app(scope, receive, send)
            return
        client = _client(scope)
        wait = self.failures.retry_after(client)
        if wait > 0:
            await self._throttled(scope, receive, send, wait)
            return
        presented: str | bytes | None = _bearer(scope)
        if presented is None and scope["type"] == "websocket":
            presented = _query_token(scope)
        if token_matches(self.token, presented):
            self.failures.succeeded(client)
            await self.app(scope, receive, send)
            return
        message = "missing bearer token" if presented is None else "invalid bearer token"
        if self.failures.failed(client):
            log.warning(
                "auth: %d failed tokens from %s within %.0fs: refusing it for %.0fs (last: %s %s)",
                self.failures.limit,
                client,
                self.failures.window,
                self.failures.window,
                scope.get("method", "WS"),
                scope.get("path"),
                extra={"client": client},
            )
        if scope["type"] == "http":
            response = JSONResponse(
                {
                    "error": message,
                    "detail": {"hint": "send Authorization: Bearer <AIOPS_API_TOKEN>"},
                },
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        await deny_websocket(scope, receive, send, 401, message)

    async def _throttled(self, scope: Scope, receive: Receive, send: Send, wait: float) -> None:
        seconds = max(1, math.ceil(wait))
        message = (
            f"too many failed authentication attempts from this client: retry after {seconds}s"
        )
        if scope["type"] == "http":
            response = JSONResponse(
                {"error": message, "detail": {"retry_after_seconds": seconds}},
                status_code=429,
                headers={"Retry-After": str(seconds)},
            )
            await response(scope, receive, send)
            return
        await deny_websocket(scope, receive, send, 429, message, retry_after=seconds)


async def deny_websocket(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    message: str,
    *,
    retry_after: int | None = None,
) -> None:
    """Refuse a WebSocket handshake: an HTTP error response when the server supports it,
    otherwise a close before accept (the client sees HTTP 403)."""
    await receive()  # websocket.connect
    if "websocket.http.response" in (scope.get("extensions") or {}):
        body = dumps({"error": message, "detail": None})
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        if retry_after is not None:
            headers.append((b"retry-after", str(retry_after).encode()))
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": WS_POLICY_VIOLATION, "reason": message})


def is_loopback(host: str) -> bool:
    import ipaddress

    if host in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
