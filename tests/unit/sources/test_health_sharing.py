"""Datasource health shared between processes: the ledger every client reports to, the store
rows (newest word wins), and a client adopting another process' newer word."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from aiops.errors import DatasourceUnavailable
from aiops.sources.health import HealthLedger, HealthObservation
from aiops.sources.http import RetryPolicy
from aiops.sources.prometheus import PrometheusClient
from aiops.store import Store, read_datasource_health, record_datasource_health

ONCE = RetryPolicy(attempts=1, initial_seconds=0, jitter_seconds=0)
OK = {"status": "success", "data": {"resultType": "scalar", "result": [1700000000, "1"]}}


def client_for(handler, urls, ledger) -> PrometheusClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    client = PrometheusClient(http, list(urls), retry=ONCE, name="prom")
    client.http.health_sink = ledger.observe
    return client


def refuse_p1(request: httpx.Request) -> httpx.Response:
    if request.url.host == "p1":
        raise httpx.ConnectError("refused", request=request)
    return httpx.Response(200, json=OK)


async def test_every_attempt_is_reported_and_status_changes_are_written_at_once():
    written: list[HealthObservation] = []
    ledger = HealthLedger(writer=written.extend, observer="flow@test", min_interval=3600)
    client = client_for(refuse_p1, ["http://p1:9090", "http://p2:9090"], ledger)
    await client.query("vector(1)", 1700000000)
    by_url = {o.url: o for o in written}
    assert (
        by_url["http://p1:9090"].status == "down"
        and "ConnectError" in by_url["http://p1:9090"].last_error
    )
    assert (
        by_url["http://p2:9090"].status == "up" and by_url["http://p2:9090"].observer == "flow@test"
    )
    # the same status again within min_interval is not written again; the ledger still knows it
    await client.query("vector(1)", 1700000000)
    assert len(written) == 2
    assert {o.url for o in ledger.latest()} == {"http://p1:9090", "http://p2:9090"}


async def test_a_failing_writer_never_fails_the_query():
    def broken(_):
        raise RuntimeError("store is gone")

    client = client_for(
        refuse_p1, ["http://p1:9090", "http://p2:9090"], HealthLedger(writer=broken)
    )
    result = await client.query("vector(1)", 1700000000)
    assert result.scalar == (1700000000.0, 1.0)


def test_the_store_keeps_the_newest_observation_per_url(tmp_path):
    t0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)

    def obs(status, at, observer):
        return HealthObservation("loki", "loki", "http://l1:3100", status, at, observer)

    with Store.open(f"sqlite:///{tmp_path / 'a.db'}") as db:
        record_datasource_health(db, [obs("up", t0, "api")])
        record_datasource_health(db, [obs("down", t0 + timedelta(seconds=5), "flow")])
        record_datasource_health(
            db, [obs("up", t0 + timedelta(seconds=1), "late-api")]
        )  # older: ignored
        (row,) = read_datasource_health(db)
    assert (row.status, row.observer, row.observed_at) == (
        "down",
        "flow",
        t0 + timedelta(seconds=5),
    )


async def test_a_client_adopts_newer_news_and_fails_over_past_a_url_another_process_found_down():
    seen: list[str] = []

    def handler(request):
        seen.append(request.url.host)
        return httpx.Response(200, json=OK)

    client = client_for(handler, ["http://p1:9090", "http://p2:9090"], HealthLedger())
    now = datetime.now(UTC)
    assert client.http.adopt(
        "http://p1:9090", "down", now, last_error="refused", observer="flow@w1"
    )
    health = client.health()
    assert health.urls[0].status == "down" and health.urls[0].observer == "flow@w1"
    await client.query("vector(1)", 1700000000)
    assert seen == ["p2"]  # p1 is cooling off: a flow found it down a moment ago
    # older news than the client's own is ignored
    assert not client.http.adopt("http://p2:9090", "down", now - timedelta(minutes=5))
    assert client.health().urls[1].status == "up"


async def test_unknown_urls_say_nothing_and_bad_statuses_are_not_adopted():
    client = client_for(refuse_p1, ["http://p1:9090"], HealthLedger())
    assert not client.http.adopt("http://p1:9090", "sideways", datetime.now(UTC))
    assert not client.http.adopt("http://elsewhere:9090", "up", datetime.now(UTC))
    with pytest.raises(DatasourceUnavailable):
        await client.query("vector(1)", 1700000000)
