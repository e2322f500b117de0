"""``GET /metrics``: the service's own metrics and the latest anomaly scores."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from aiops.api.metrics import sanitize_labels
from tests.api.support import make_detector

pytestmark = pytest.mark.prometheus


def _samples(text: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append(s)
    return out


async def test_metrics_expose_requests_latency_and_datasource_counters(api, prometheus):
    h = prometheus.history
    req = {"query": "aiops_test_gauge", "time": h.timestamp(5)}
    for _ in range(2):
        assert (
            await api.client.post("/api/datasources/prometheus/query", json=req)
        ).status_code == 200
    r = await api.client.get("/metrics", headers={"Authorization": ""})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    samples = _samples(r.text)
    requests = {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for s in samples["aiops_api_requests_total"]
    }
    assert requests[("POST", "/api/datasources/prometheus/query", "200")] == 2
    assert any(
        s.labels["route"] == "/api/datasources/prometheus/query"
        for s in samples["aiops_api_request_duration_seconds_count"]
    )
    by_ds = lambda name: {s.labels["datasource"]: s.value for s in samples[name]}  # noqa: E731
    assert by_ds("aiops_datasource_requests_total")["prometheus"] == 2
    assert by_ds("aiops_datasource_cache_hits_total")["prometheus"] == 1
    assert by_ds("aiops_datasource_cache_misses_total")["prometheus"] == 1
    for name in ("retries", "failovers", "errors"):
        assert by_ds(f"aiops_datasource_{name}_total")["prometheus"] == 0
    (up,) = [
        s for s in samples["aiops_datasource_url_up"] if s.labels["datasource"] == "prometheus"
    ]
    assert up.value == 1 and up.labels["url"] == prometheus.url
    assert samples["aiops_api_websocket_clients"][0].value == 0
    assert "aiops_api_websocket_events_sent_total" in samples


async def test_metrics_carry_the_latest_score_per_detector_and_series(api):
    from datetime import UTC, datetime, timedelta

    from aiops.store import series_key

    make_detector(api.store, "det-a")
    t0 = datetime(2024, 1, 1, tzinfo=UTC)

    def latest(labels, minute, score):
        return {
            "series_key": series_key(labels),
            "labels": labels,
            "ts": t0 + timedelta(minutes=minute),
            "value": 1.0,
            "score": score,
        }

    hostile = {"__name__": "http_latency", "instance": "a", "detector": "x", "bad-name": "v"}
    api.store.commit_detection(
        "det-a", latest=[latest(hostile, 0, 5.0), latest({"instance": "b"}, 0, 0.25)]
    )
    api.store.commit_detection("det-a", latest=[latest(hostile, 1, 3.5)])
    text = (await api.client.get("/metrics")).text
    scores = {
        tuple(sorted(s.labels.items())): s.value for s in _samples(text)["aiops_anomaly_score"]
    }
    assert scores == {
        (
            ("bad_name", "v"),
            ("detector", "det-a"),
            ("exported_detector", "x"),
            ("instance", "a"),
            ("metric", "http_latency"),
        ): 3.5,
        (("detector", "det-a"), ("instance", "b")): 0.25,  # a normal series is exported too
    }
    assert 'aiops_anomaly_score{detector="det-a",instance="b"} 0.25' in text


def test_label_names_are_sanitised():
    assert sanitize_labels(
        {"__name__": "m", "a.b": "1", "9x": "2", "__meta": "3", "detector": "4"}
    ) == {
        "metric": "m",
        "a_b": "1",
        "_9x": "2",
        "exported_meta": "3",
        "exported_detector": "4",
    }


async def test_each_app_has_its_own_registry(make_api):
    async with make_api() as one, make_api() as two:
        assert one.state.metrics.registry is not two.state.metrics.registry
        await one.client.get("/api/detectors")
        text = (await two.client.get("/metrics")).text
        assert 'route="/api/detectors"' not in text
