"""Bad input is a 4xx with a message, never a 500; the token guards every protected route."""

from __future__ import annotations

import logging
import re

import httpx
import pytest
from starlette.routing import Route
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from aiops.api import ApiOptions
from aiops.api.server import build_server, check_bind
from aiops.errors import ConfigError
from tests.api.support import TOKEN, make_settings, serve

pytestmark = pytest.mark.prometheus

QUERY = "/api/datasources/prometheus/query"


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"{not json", "malformed JSON"),
        (b"", "body is required"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"up"', "must be a JSON object"),
        (b"\xff\xfe", "malformed JSON"),
    ],
)
async def test_unreadable_bodies_are_400(api, content, words):
    r = await api.client.post(QUERY, content=content, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert words in r.json()["error"] and set(r.json()) == {"error", "detail"}


async def test_validation_errors_list_every_problem(api):
    r = await api.client.post("/api/detectors", json={"id": 5, "kind": None, "extra": 1})
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["detail"]["errors"]}
    assert fields == {"id", "kind", "extra"}


async def test_oversized_bodies_are_413_naming_the_limit(make_api):
    async with make_api(options=ApiOptions(max_body_bytes=1000, tail_interval=0.05)) as api:
        big = b'{"query": "' + b"x" * 2000 + b'"}'
        r = await api.client.post(QUERY, content=big, headers={"Content-Type": "application/json"})
        assert r.status_code == 413
        assert r.json()["detail"] == {"limit_bytes": 1000} and "1000 bytes" in r.json()["error"]

        async def chunks():  # no Content-Length: counted while streaming
            for _ in range(10):
                yield b" " * 200

        r = await api.client.post(
            QUERY, content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 413 and r.json()["detail"] == {"limit_bytes": 1000}


async def test_the_default_limit_is_10_mb(api):
    r = await api.client.post(
        "/api/datasources/loki/analyze", content=b" " * (10 * 1024 * 1024 + 1)
    )
    assert r.status_code == 413 and r.json()["detail"]["limit_bytes"] == 10 * 1024 * 1024


async def test_unknown_paths_and_methods_are_json_errors(api):
    r = await api.client.get("/api/nothing-here")
    assert r.status_code == 404 and r.json()["error"] == "no such endpoint: GET /api/nothing-here"
    r = await api.client.put("/api/detectors")
    assert r.status_code == 405 and "PUT" in r.json()["error"]


class ExplodingStore:
    """A store whose every call fails unexpectedly (a bug, not bad input)."""

    def max_event_id(self) -> int:
        return 0

    def events_after(self, *args, **kwargs):
        return []

    def __getattr__(self, name):
        def boom(*args, **kwargs):
            raise RuntimeError("secret internals: password=hunter2")

        return boom


async def test_unexpected_errors_are_a_500_without_traceback_and_are_logged(make_api, caplog):
    async with make_api(store_override=ExplodingStore()) as api:
        with caplog.at_level(logging.ERROR, logger="aiops.api"):
            r = await api.client.get("/api/detectors")
    assert r.status_code == 500
    body = r.json()
    assert body["error"] == "internal server error" and re.fullmatch(
        r"[0-9a-f]{12}", body["detail"]["request_id"]
    )
    assert "hunter2" not in r.text and "Traceback" not in r.text
    (record,) = [rec for rec in caplog.records if rec.name == "aiops.api" and rec.exc_info]
    assert (
        body["detail"]["request_id"] in record.getMessage()
        and "/api/detectors" in record.getMessage()
    )


# --------------------------------------------------------------------------- the token


def _protected_http_routes(app) -> list[tuple[str, str]]:
    public = {op.path for op in app.state.operations if op.public}
    out = []
    for route in app.routes:
        if isinstance(route, Route) and route.path not in public:
            path = route.path.replace(
                "{id}", "00000000-0000-0000-0000-000000000000" if "runs" in route.path else "d1"
            )
            for method in sorted(route.methods - {"HEAD"}):
                out.append((method, path))
    return out


async def test_every_protected_route_needs_the_token(api):
    routes = _protected_http_routes(api.app)
    assert len(routes) >= 16
    for method, path in routes:
        for headers in (
            {"Authorization": ""},
            {"Authorization": "Bearer wrong-token-0123456789"},
            {"Authorization": f"Basic {TOKEN}"},
        ):
            r = await api.client.request(method, path, headers=headers, json={})
            assert r.status_code == 401, (method, path, headers)
            assert r.headers["www-authenticate"] == "Bearer" and r.json()["error"]
        r = await api.client.request(
            method, path, params={"token": TOKEN}, headers={"Authorization": ""}, json={}
        )
        assert r.status_code == 401, "?token= is for WebSockets only"
        r = await api.client.request(method, path, json={})
        assert r.status_code != 401, (method, path)


async def test_health_and_metrics_need_no_token(api):
    for path in ("/api/datasources/health", "/metrics"):
        r = await api.client.get(path, headers={"Authorization": ""})
        assert r.status_code == 200, path


async def test_without_a_configured_token_nothing_is_asked(make_api):
    async with make_api(token=None) as api:
        assert (await api.client.get("/api/detectors")).status_code == 200


async def test_the_websocket_needs_the_token_in_a_header_or_the_query(make_api):
    async with make_api() as api, serve(api.app) as hostport:
        url = f"ws://{hostport}/api/events/ws"
        for bad in (url, url + "?token=wrong-token-0123456789"):
            with pytest.raises(InvalidStatus) as info:
                async with connect(bad, open_timeout=10):
                    pass
            assert info.value.response.status_code == 401
        async with connect(url + f"?token={TOKEN}", open_timeout=10) as ws:
            assert '"op":"hello"' in await ws.recv()
        async with connect(
            url, additional_headers={"Authorization": f"Bearer {TOKEN}"}, open_timeout=10
        ) as ws:
            assert '"op":"hello"' in await ws.recv()


def test_a_non_loopback_address_needs_a_token(prometheus, tmp_path):
    open_settings = make_settings(prometheus.url, f"sqlite:///{tmp_path / 'a.db'}", token=None)
    for host in ("0.0.0.0", "192.168.1.10", "::", "example.com"):
        with pytest.raises(ConfigError, match="AIOPS_API_TOKEN"):
            check_bind(open_settings, host)
        with pytest.raises(ConfigError):
            build_server(open_settings, host, 0)
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        check_bind(open_settings, host)
    check_bind(make_settings(prometheus.url, f"sqlite:///{tmp_path / 'a.db'}"), "0.0.0.0")


async def test_run_api_server_serves_the_app(prometheus, tmp_path):
    """build_server (what run_api runs) gives a working uvicorn server."""
    import asyncio

    from tests.api.support import listening_socket

    settings = make_settings(prometheus.url, f"sqlite:///{tmp_path / 'a.db'}")
    server = build_server(settings, "127.0.0.1", 0)
    sock = listening_socket()
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        host, port = sock.getsockname()
        async with httpx.AsyncClient(timeout=10) as client:
            r = await client.get(f"http://{host}:{port}/api/datasources/health")
        assert r.status_code == 200
    finally:
        server.should_exit = True
        async with asyncio.timeout(15):
            await task
        sock.close()


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "/api/anomalies", {"params": {"after_id": 2**63}}),
        ("POST", "/api/detectors", {"json": {"id": "d1", "kind": "zscore", "interval": 10**30}}),
        (
            "POST",
            "/api/detectors",
            {"json": {"id": "d1", "kind": "zscore", "training_window": "99999999999999999999999s"}},
        ),
        (
            "POST",
            "/api/detectors",
            {"json": {"id": "d1", "kind": "zscore", "params": {"window": 10**30}}},
        ),
        (
            "POST",
            "/api/datasources/detectors/d1/datasources",
            {"json": {"query": "up", "lookback": 10**30}},
        ),
        ("POST", QUERY, {"json": {"query": "up", "time": 1e300}}),
        ("POST", QUERY, {"json": {"query": "up", "start": 0, "end": 1, "step": 1e-300}}),
        ("POST", QUERY, {"json": {"query": "up\x00"}}),
        ("POST", "/api/datasources/loki/analyze", {"json": {"lines": ["a"], "bucket": 1e20}}),
        (
            "POST",
            "/api/datasources/loki/query",
            {"json": {"query": '{app="x"}', "start": 0, "end": 7e9}},
        ),
        (
            "POST",
            "/api/datasources/prometheus/query-builder",
            {"json": {"metric": "up", "at": 1e300}},
        ),
    ],
)
async def test_extreme_values_are_4xx_never_500(api, method, path, kwargs):
    api.store.create_detector({"id": "d1", "kind": "zscore"})
    r = await api.client.request(method, path, **kwargs)
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["error"]
