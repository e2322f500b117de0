"""Bearer-token authentication (``AIOPS_API_TOKEN``) as one pure ASGI middleware.

Every HTTP route and the WebSocket need the token, except the public paths (the datasource
health check and ``/metrics``). HTTP sends ``Authorization: Bearer <token>``; a WebSocket may
send that header or ``?token=<token>`` (browsers cannot set headers on a WebSocket). Tokens
are compared with :func:`hmac.compare_digest`. Without a configured token authentication is
off, which :func:`aiops.api.server.run_api` allows on loopback addresses only.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from aiops.api.errors import JSONResponse, dumps

__all__ = ["AuthMiddleware", "token_matches", "is_loopback"]

WS_POLICY_VIOLATION = 1008


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

    def __init__(self, app: ASGIApp, *, token: str | None, public_paths: Iterable[str]) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.public = frozenset(public_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token is None or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "http" and scope["path"] in self.public:
            await self.app(scope, receive, send)
            return
        presented: str | bytes | None = _bearer(scope)
        if presented is None and scope["type"] == "websocket":
            presented = _query_token(scope)
        if token_matches(self.token, presented):
            await self.app(scope, receive, send)
            return
        message = "missing bearer token" if presented is None else "invalid bearer token"
        if scope["type"] == "http":
            response = JSONResponse(
                {"error": message, "detail": {"hint": "send Authorization: Bearer <AIOPS_API_TOKEN>"}},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        await deny_websocket(scope, receive, send, 401, message)


async def deny_websocket(scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
    """Refuse a WebSocket handshake: an HTTP error response when the server supports it,
    otherwise a close before accept (the client sees HTTP 403)."""
    await receive()  # websocket.connect
    if "websocket.http.response" in (scope.get("extensions") or {}):
        body = dumps({"error": message, "detail": None})
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
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
