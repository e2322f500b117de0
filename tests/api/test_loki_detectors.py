"""Detectors on a Loki datasource through the API: a log query is refused when saved (400
naming the field), a LogQL metric query is charted by ``/series`` like a PromQL one."""

from __future__ import annotations

import pytest

from tests.support import lokidata

pytestmark = pytest.mark.no_prometheus

LOG_QUERY = '{app="checkout"} |= "error"'


async def test_a_log_query_on_a_loki_detector_is_refused_naming_the_field(api):
    body = {"id": "d1", "kind": "zscore", "datasource": {"name": "loki", "query": LOG_QUERY}}
    r = await api.client.post("/api/detectors", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["detail"]["field"] == "datasource.query" and "metric query" in r.json()["error"]
    assert api.store.list_detectors() == []

    created = await api.client.post("/api/detectors", json={"id": "d1", "kind": "zscore"})
    assert created.status_code == 201
    r = await api.client.post(
        "/api/datasources/detectors/d1/datasources", json={"name": "loki", "query": LOG_QUERY}
    )
    assert r.status_code == 400 and r.json()["detail"]["field"] == "query", r.text
    assert api.store.get_detector("d1").datasource is None


async def test_series_of_a_loki_detector_replays_its_metric_query(api):
    lokidata.load(api.loki)
    api.store.create_detector(
        {
            "id": "checkout-errors",
            "kind": "zscore",
            "params": {"window": 30, "calibration": "none"},
            "status": "running",
            "datasource": {"name": "loki", "query": lokidata.QUERY, "step": 60},
        }
    )
    burst = lokidata.burst_at()
    r = await api.client.get(
        "/api/detectors/checkout-errors/series", params={"start": burst - 1800, "end": burst + 600}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["datasource"] == "loki" and body["warmup_points"] == 30
    (series,) = body["series"]
    i = series["timestamps"].index(burst)
    assert series["values"][i] == 40.0 and series["score"][i] > 1
    assert series["values"][i - 1] == float(lokidata.errors_in(lokidata.BURST_MINUTE - 1))
