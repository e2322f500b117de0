"""Background datasource health: the API probes every URL at a set interval, shares what it
learns through the store, takes in what the flows shared, and exports aiops_datasource_up."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aiops.sources.health import HealthObservation
from aiops.store import read_datasource_health, record_datasource_health
from tests.api.support import LOKI_URL

pytestmark = pytest.mark.prometheus


def _sample(text: str, name: str, **labels: str) -> float | None:
    want = name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    return None


async def test_loki_is_up_before_any_query_once_the_background_probe_ran(make_api, prometheus):
    async with make_api(
        health_probe_seconds=3600
    ) as api:  # one round at start, the next in an hour
        await api.app.state.api.prober.wait_rounds(1)
        body = (await api.client.get("/api/datasources/health")).json()
        by_name = {d["name"]: d for d in body["datasources"]}
        assert by_name["loki"]["status"] == "up" and by_name["prometheus"]["status"] == "up"
        metrics = (await api.client.get("/metrics")).text
        assert _sample(metrics, "aiops_datasource_up", datasource="loki", url=LOKI_URL) == 1.0
        assert (
            _sample(metrics, "aiops_datasource_up", datasource="prometheus", url=prometheus.url)
            == 1.0
        )
        # shared through the store for the other processes
        stored = {(o.datasource, o.url): o for o in read_datasource_health(api.store)}
        assert stored[("loki", LOKI_URL)].status == "up"
        assert stored[("loki", LOKI_URL)].observer.startswith("api@")


async def test_a_dead_url_is_down_in_health_and_metrics_after_a_probe(make_api):
    from tests.support.prometheus import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    async with make_api(prometheus_url=dead, loki=False, health_probe_seconds=3600) as api:
        await api.app.state.api.prober.wait_rounds(1)
        metrics = (await api.client.get("/metrics")).text
    assert _sample(metrics, "aiops_datasource_up", datasource="prometheus", url=dead) == 0.0


async def test_what_a_flow_learned_shows_in_health_metrics_and_failover(make_api, prometheus):
    async with make_api() as api:  # no background probe: only the flow's word
        record_datasource_health(
            api.store,
            [
                HealthObservation(
                    "loki",
                    "loki",
                    LOKI_URL,
                    "down",
                    datetime.now(UTC),
                    "flow@worker-1",
                    last_error="cannot reach datasource 'loki'",
                    consecutive_failures=3,
                )
            ],
        )
        body = (await api.client.get("/api/datasources/health")).json()
        loki = next(d for d in body["datasources"] if d["name"] == "loki")
        assert loki["status"] == "down"
        assert (
            loki["urls"][0]["observer"] == "flow@worker-1"
            and loki["urls"][0]["consecutive_failures"] == 3
        )
        metrics = (await api.client.get("/metrics")).text
        assert _sample(metrics, "aiops_datasource_up", datasource="loki", url=LOKI_URL) == 0.0
        # the API's own request that then succeeds is newer news: up again
        r = await api.client.post(
            "/api/datasources/loki/analyze", json={"selector": '{app="api"}', "since": "5m"}
        )
        assert r.status_code == 200, r.text
        loki = next(
            d
            for d in (await api.client.get("/api/datasources/health")).json()["datasources"]
            if d["name"] == "loki"
        )
        assert loki["status"] == "up" and loki["urls"][0]["observer"] is None
