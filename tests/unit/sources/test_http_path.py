"""The shared request path: retries, failover, health, cache, error mapping (MockTransport)."""

from __future__ import annotations

import httpx
import pytest

from aiops.errors import (
    BadQuery,
    BadResponse,
    DatasourceError,
    DatasourceTimeout,
    DatasourceUnavailable,
)
from aiops.sources.http import RetryPolicy
from aiops.sources.prometheus import PrometheusClient

FAST = RetryPolicy(attempts=3, initial_seconds=0, max_wait_seconds=0, jitter_seconds=0)
OK = {"status": "success", "data": {"resultType": "scalar", "result": [1700000000, "1"]}}


def client_for(handler, urls=("http://p1:9090",), **kw) -> PrometheusClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return PrometheusClient(http, list(urls), retry=kw.pop("retry", FAST), **kw)


async def test_503_503_200_succeeds_on_third_attempt():
    answers = iter([503, 503, 200])
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        code = next(answers)
        seen.append(code)
        return httpx.Response(
            code, json=OK if code == 200 else {"status": "error", "error": "busy"}
        )

    client = client_for(handler)
    result = await client.query("vector(1)", 1700000000)
    assert result.scalar == (1700000000.0, 1.0)
    assert seen == [503, 503, 200]
    assert client.stats.retries == 2


async def test_429_is_retried_but_400_fails_at_once_with_prometheus_message():
    calls = []

    def handler(request):
        calls.append(request)
        return httpx.Response(
            400,
            json={
                "status": "error",
                "errorType": "bad_data",
                "error": 'parse error: unexpected "}"',
            },
        )

    client = client_for(handler)
    with pytest.raises(BadQuery) as err:
        await client.query("up{", 1700000000)
    assert len(calls) == 1
    assert err.value.message == 'bad_data: parse error: unexpected "}"'
    assert err.value.query == "up{"
    assert err.value.url == "http://p1:9090"
    assert err.value.status_code == 400


async def test_failover_moves_to_secondary_when_primary_refuses():
    def handler(request):
        if request.url.host == "p1":
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json=OK)

    client = client_for(handler, urls=("http://p1:9090", "http://p2:9090"))
    result = await client.query("vector(1)", 1700000000)
    assert result.url == "http://p2:9090"
    health = client.health()
    assert health.active_url == "http://p2:9090"
    by_url = {u.url: u for u in health.urls}
    assert by_url["http://p1:9090"].status == "down"
    assert "connection refused" in by_url["http://p1:9090"].last_error
    assert by_url["http://p2:9090"].status == "up"
    assert by_url["http://p2:9090"].latency_ms is not None
    assert health.status == "degraded"
    # The down primary is skipped while it cools off: the next request goes straight to p2.
    before = client.stats.failovers
    await client.query("vector(2)", 1700000000)
    assert client.stats.failovers == before


async def test_every_url_dead_raises_unavailable_naming_all_urls():
    def handler(request):
        raise httpx.ConnectError("connection refused", request=request)

    client = client_for(handler, urls=("http://p1:9090", "http://p2:9090"))
    with pytest.raises(DatasourceUnavailable) as err:
        await client.query("up", 1700000000)
    assert "http://p1:9090" in err.value.message and "http://p2:9090" in err.value.message
    assert err.value.datasource == "prometheus"
    assert err.value.query == "up"
    assert client.health().status == "down"


async def test_timeouts_become_datasource_timeout_after_retries():
    calls = []

    def handler(request):
        calls.append(1)
        raise httpx.ReadTimeout("timed out", request=request)

    client = client_for(handler)
    with pytest.raises(DatasourceTimeout):
        await client.query("up", 1700000000)
    assert len(calls) == 3


async def test_401_is_not_retried_and_is_not_a_bad_query():
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(401, text="unauthorized")

    client = client_for(handler)
    with pytest.raises(DatasourceError) as err:
        await client.query("up", 1700000000)
    assert not isinstance(err.value, BadQuery)
    assert err.value.upstream_status == 401
    assert len(calls) == 1


async def test_invalid_json_and_missing_envelope_are_bad_responses():
    client = client_for(lambda r: httpx.Response(200, text="<html>proxy error</html>"))
    with pytest.raises(BadResponse):
        await client.query("up", 1700000000)
    client = client_for(
        lambda r: httpx.Response(200, json={"status": "success", "data": {"resultType": "matrix"}})
    )
    with pytest.raises(BadResponse):
        await client.query("up", 1700000000)


async def test_past_queries_are_cached_and_future_windows_never_are():
    calls = []

    def handler(request):
        calls.append(request.url.path)
        if request.url.path.endswith("query_range"):
            return httpx.Response(
                200, json={"status": "success", "data": {"resultType": "matrix", "result": []}}
            )
        return httpx.Response(200, json=OK)

    client = client_for(handler)
    first = await client.query("up", "2024-01-01T00:00:00Z")
    again = await client.query("up", 1704067200)  # the same instant, another spelling
    assert not first.cached and again.cached
    assert len(calls) == 1

    await client.query_range("up", "now-1h", "now+1h", "60s")
    await client.query_range("up", "now-1h", "now+1h", "60s")
    assert calls.count("/api/v1/query_range") == 2  # the window ends in the future: never cached


async def test_now_relative_instant_answer_says_it_came_from_cache():
    client = client_for(lambda r: httpx.Response(200, json=OK))
    first = await client.query("up")
    second = await client.query("up")
    assert not first.cached
    assert second.cached and 0 <= second.age_seconds < 30


async def test_zero_ttl_disables_the_cache():
    calls = []
    client = client_for(lambda r: calls.append(1) or httpx.Response(200, json=OK), cache_ttl=0)
    await client.query("up", 1700000000)
    await client.query("up", 1700000000)
    assert len(calls) == 2


async def test_long_queries_are_posted_as_a_form():
    methods = []

    def handler(request):
        methods.append((request.method, request.headers.get("content-type", "")))
        return httpx.Response(200, json=OK)

    client = client_for(handler)
    await client.query("vector(1) + " * 200 + "vector(1)", 1700000000)
    assert methods == [("POST", "application/x-www-form-urlencoded")]
