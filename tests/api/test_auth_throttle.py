"""Token guessing is throttled per client: after the failure limit a clear 429 with
Retry-After (the token is not compared meanwhile), a log line, and bounded memory."""

from __future__ import annotations

import logging

import httpx
import pytest

from aiops.api.auth import AuthMiddleware, FailureLimit
from tests.api.support import TOKEN

pytestmark = pytest.mark.no_prometheus

WRONG = {"Authorization": "Bearer wrong-token-0123456789"}
RIGHT = {"Authorization": f"Bearer {TOKEN}"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def auth_middleware(app) -> AuthMiddleware:
    layer = app.middleware_stack
    while not isinstance(layer, AuthMiddleware):
        layer = layer.app
    return layer


def client_from(app, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://api.test")


async def test_after_the_limit_a_client_gets_429_with_retry_after_even_with_the_right_token(
    make_api, caplog
):
    clock = Clock()
    async with make_api(api_auth_failure_limit=3, api_auth_failure_window_seconds=60) as api:
        await api.client.get("/api/detectors")  # builds the middleware stack
        auth_middleware(api.app).failures.clock = clock
        async with (
            client_from(api.app, "203.0.113.7") as guesser,
            client_from(api.app, "203.0.113.8") as other,
        ):
            with caplog.at_level(logging.WARNING, logger="aiops.api.auth"):
                statuses = [
                    (await guesser.get("/api/detectors", headers=WRONG)).status_code
                    for _ in range(3)
                ]
            assert statuses == [401, 401, 401]
            assert any(
                "203.0.113.7" in r.getMessage() and "3 failed tokens" in r.getMessage()
                for r in caplog.records
            )

            refused = await guesser.get("/api/detectors", headers=RIGHT)
            assert refused.status_code == 429
            assert refused.headers["retry-after"] == "60"
            body = refused.json()
            assert (
                "too many failed authentication attempts" in body["error"]
                and body["detail"]["retry_after_seconds"] == 60
            )

            assert (
                await other.get("/api/detectors", headers=RIGHT)
            ).status_code == 200  # others are not punished
            assert (
                await guesser.get("/api/datasources/health")
            ).status_code == 200  # public paths stay open

            clock.now += 30
            assert (await guesser.get("/api/detectors", headers=WRONG)).headers[
                "retry-after"
            ] == "30"
            clock.now += 31
            assert (await guesser.get("/api/detectors", headers=RIGHT)).status_code == 200


async def test_a_success_clears_the_count_and_failures_age_out_with_the_window(make_api):
    clock = Clock()
    async with make_api(api_auth_failure_limit=3, api_auth_failure_window_seconds=60) as api:
        await api.client.get("/api/detectors")
        auth_middleware(api.app).failures.clock = clock
        async with client_from(api.app, "198.51.100.1") as c:
            for _ in range(2):
                assert (await c.get("/api/detectors", headers=WRONG)).status_code == 401
            assert (await c.get("/api/detectors", headers=RIGHT)).status_code == 200
            for _ in range(2):
                assert (await c.get("/api/detectors", headers=WRONG)).status_code == 401
            clock.now += 61
            for _ in range(2):
                assert (await c.get("/api/detectors", headers=WRONG)).status_code == 401


def test_the_client_table_is_bounded():
    limit = FailureLimit(limit=5, window=60, max_clients=100, clock=Clock())
    for i in range(10_000):
        limit.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(limit) == 100


async def test_a_throttled_client_is_refused_on_the_websocket_too(make_api):
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    from tests.api.support import serve

    async with make_api(api_auth_failure_limit=2) as api, serve(api.app) as hostport:
        url = f"ws://{hostport}/api/events/ws"
        statuses = []
        for token in ("wrong-token-0123456789", "wrong-token-0123456789", TOKEN):
            with pytest.raises(InvalidStatus) as info:
                async with connect(f"{url}?token={token}", open_timeout=10):
                    pass
            statuses.append(info.value.response.status_code)
        assert statuses == [401, 401, 429]
        assert int(info.value.response.headers["retry-after"]) > 0
