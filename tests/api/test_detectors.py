"""``/api/detectors`` and ``/api/datasources/detectors/{id}/datasources``."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.no_prometheus

DS = "/api/datasources/detectors/{}/datasources"


async def test_create_read_list_and_delete_a_detector(api):
    body = {
        "id": "api-latency",
        "kind": "mad",
        "params": {"window": 120},
        "interval": "2m",
        "datasource": {
            "name": "prometheus",
            "query": "rate(x[5m])",
            "step": "30s",
            "lookback": "2h",
        },
    }
    r = await api.client.post("/api/detectors", json=body)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created.pop("warnings") == []  # a 30 s step reads every sample
    assert created["id"] == "api-latency" and created["name"] == "api-latency"
    assert created["status"] == "training" and created["interval_seconds"] == 120
    assert created["datasources"][0] | {"created_at": None, "updated_at": None} == {
        "detector_id": "api-latency",
        "name": "prometheus",
        "query": "rate(x[5m])",
        "step_seconds": 30,
        "lookback_seconds": 7200,
        "created_at": None,
        "updated_at": None,
    }
    read = (await api.client.get("/api/detectors/api-latency")).json()
    assert read.pop("models") == [] and read.pop("models_total") == 0  # no series seen yet
    assert read == created
    listed = (await api.client.get("/api/detectors")).json()["detectors"]
    assert [d["id"] for d in listed] == ["api-latency"]
    assert (await api.client.get("/api/detectors", params={"status": "running"})).json()[
        "detectors"
    ] == []
    r = await api.client.delete("/api/detectors/api-latency")
    assert r.status_code == 204 and r.content == b""
    r = await api.client.get("/api/detectors/api-latency")
    assert r.status_code == 404 and r.json()["error"] == "detector 'api-latency' not found"


async def test_a_duplicate_id_is_a_409(api):
    assert (
        await api.client.post("/api/detectors", json={"id": "d1", "kind": "zscore"})
    ).status_code == 201
    r = await api.client.post("/api/detectors", json={"id": "d1", "kind": "zscore"})
    assert r.status_code == 409 and "already exists" in r.json()["error"]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"id": "d1", "kind": "prophet"}, 400, "unknown detector kind 'prophet'"),
        ({"id": "d1", "kind": "zscore", "params": {"windw": 10}}, 400, "windw"),
        ({"id": "d1", "kind": "zscore", "params": {"window": -3}}, 400, "window"),
        ({"id": "Bad Id", "kind": "zscore"}, 422, "id"),
        ({"id": "d1", "kind": "zscore", "threshold": 0}, 422, "threshold"),
        ({"id": "d1", "kind": "zscore", "interval": "soon"}, 422, "interval"),
        ({"id": "d1", "kind": "zscore", "colour": "red"}, 422, "unknown field"),
        (
            {"id": "d1", "kind": "zscore", "datasource": {"name": "nowhere", "query": "up"}},
            400,
            "unknown datasource 'nowhere'",
        ),
        (
            {
                "id": "d1",
                "kind": "zscore",
                "datasource": {"url": "http://evil:9090", "query": "up"},
            },
            422,
            "unknown field",
        ),
    ],
)
async def test_bad_detectors_are_refused_with_the_reason(api, body, status, words):
    r = await api.client.post("/api/detectors", json=body)
    assert r.status_code == status, r.text
    assert words in r.json()["error"] or words in str(r.json()["detail"])
    assert api.store.list_detectors() == []


async def test_patch_changes_params_and_promotes_then_pauses(api):
    await api.client.post(
        "/api/detectors", json={"id": "d1", "kind": "zscore", "params": {"window": 30}}
    )
    r = await api.client.patch(
        "/api/detectors/d1", json={"params": {"window": 60}, "threshold": 2.5}
    )
    assert r.status_code == 200, r.text
    assert r.json()["params"] == {"window": 60} and r.json()["threshold"] == 2.5
    assert (await api.client.patch("/api/detectors/d1", json={"status": "running"})).json()[
        "status"
    ] == "running"
    assert (await api.client.patch("/api/detectors/d1", json={"status": "paused"})).json()[
        "status"
    ] == "paused"


async def test_patch_refuses_bad_changes(api):
    await api.client.post(
        "/api/detectors", json={"id": "d1", "kind": "zscore", "status": "running"}
    )
    r = await api.client.patch("/api/detectors/d1", json={"status": "training"})
    assert r.status_code == 409 and "cannot go from running to training" in r.json()["error"]
    r = await api.client.patch("/api/detectors/d1", json={"params": {"nope": 1}})
    assert r.status_code == 400
    r = await api.client.patch("/api/detectors/d1", json={"kind": "nope"})
    assert r.status_code == 400 and "unknown detector kind" in r.json()["error"]
    r = await api.client.patch("/api/detectors/d1", json={})
    assert r.status_code == 422 and "nothing to change" in r.json()["error"]
    r = await api.client.patch("/api/detectors/d1", json={"threshold": None})
    assert r.status_code == 422
    r = await api.client.patch("/api/detectors/d1", json={"datasource": {"query": "up"}})
    assert r.status_code == 422
    r = await api.client.patch("/api/detectors/nope", json={"threshold": 2})
    assert r.status_code == 404


async def test_changing_the_kind_starts_from_that_kinds_defaults(api):
    await api.client.post(
        "/api/detectors", json={"id": "d1", "kind": "zscore", "params": {"window": 30}}
    )
    r = await api.client.patch("/api/detectors/d1", json={"kind": "mad"})
    assert r.status_code == 200, r.text
    assert r.json()["kind"] == "mad" and r.json()["params"] == {}


async def test_attach_replace_and_remove_the_datasource_of_a_detector(api):
    await api.client.post("/api/detectors", json={"id": "d1", "kind": "zscore"})
    r = await api.client.post(
        DS.format("d1"), json={"name": "prometheus", "query": "up", "step": 15}
    )
    assert r.status_code == 200, r.text
    assert r.json()["datasource"]["query"] == "up" and r.json()["datasource"]["step_seconds"] == 15
    r = await api.client.post(
        DS.format("d1"), json={"name": "loki", "query": 'sum(count_over_time({app="a"}[1m]))'}
    )
    assert r.status_code == 200
    assert [d.name for d in api.store.get_detector("d1").datasources] == ["loki"]
    r = await api.client.delete(DS.format("d1"))
    assert r.status_code == 200 and r.json() == {"detector": "d1", "removed": 1}
    assert api.store.get_detector("d1").datasources == []
    r = await api.client.delete(DS.format("d1"))
    assert r.status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"name": "prometheus", "query": "up", "url": "http://evil:9090"}, 422, "unknown field"),
        ({"url": "http://evil:9090", "query": "up"}, 422, "unknown field"),
        ({"name": "elsewhere", "query": "up"}, 400, "unknown datasource"),
        ({"name": "prometheus", "query": ""}, 422, "query"),
        ({"name": "prometheus", "query": "up", "step": "0s"}, 422, "step"),
    ],
)
async def test_a_detector_datasource_is_a_configured_name_never_a_url(api, body, status, words):
    await api.client.post("/api/detectors", json={"id": "d1", "kind": "zscore"})
    r = await api.client.post(DS.format("d1"), json=body)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]
    assert api.store.get_detector("d1").datasources == []


async def test_datasource_of_an_unknown_detector_is_a_404(api):
    r = await api.client.post(DS.format("ghost"), json={"name": "prometheus", "query": "up"})
    assert r.status_code == 404 and "ghost" in r.json()["error"]


async def test_a_step_longer_than_the_lookback_delta_is_a_warning_when_saved(api, caplog):
    """An hourly step on a plain selector would find no sample of a series sampled off the
    hour: saving says so (the answer and the log) and how the detector reads it instead."""
    import logging

    body = {
        "id": "hourly",
        "kind": "zscore",
        "datasource": {
            "name": "prometheus",
            "query": 'sum by (job) (batch_size{job="etl"})',
            "step": "1h",
        },
    }
    with caplog.at_level(logging.WARNING, logger="aiops.api"):
        r = await api.client.post("/api/detectors", json=body)
    assert r.status_code == 201, r.text
    (warning,) = r.json()["warnings"]
    assert "step 1h exceeds the datasource's lookback delta 5m" in warning
    assert 'last_over_time(batch_size{job="etl"}[1h])' in warning
    assert any(
        "detector hourly saved" in rec.getMessage() and "lookback delta" in rec.getMessage()
        for rec in caplog.records
    )
    r = await api.client.post(
        DS.format("hourly"), json={"name": "prometheus", "query": "rate(c[5m])", "step": "1h"}
    )
    assert r.status_code == 200
    (warning,) = r.json()["warnings"]
    assert "c[5m] covers only part of each 1h step" in warning
    r = await api.client.post(
        DS.format("hourly"), json={"name": "prometheus", "query": "batch_size", "step": "5m"}
    )
    assert r.json()["warnings"] == []
    r = await api.client.patch("/api/detectors/hourly", json={"threshold": 2})
    assert r.status_code == 200 and r.json()["warnings"] == []


async def test_reading_an_auto_detector_says_what_it_chose_per_series_and_why(api):
    import numpy as np
    import pandas as pd

    from aiops import detectors

    r = await api.client.post("/api/detectors", json={"id": "auto-demo", "kind": "auto"})
    assert r.status_code == 201, r.text
    idx = pd.date_range("2024-03-04", periods=4 * 96, freq="15min", tz="UTC")
    hours = (idx.hour + idx.minute / 60).to_numpy()
    daily = pd.Series(50 + 10 * np.sin(2 * np.pi * hours / 24), index=idx)
    flat = pd.Series(np.random.default_rng(0).normal(5.0, 1.0, len(idx)), index=idx)
    states = {}
    for key, series in (("a", daily), ("b", flat)):
        model = detectors.create("auto", decide_after=300)
        model.fit(series)
        states[f'instance="{key}"'] = ({"instance": key}, model.state())
    api.store.save_states("auto-demo", states)
    read = (await api.client.get("/api/detectors/auto-demo")).json()
    assert read["models_total"] == 2
    chosen = {m["labels"]["instance"]: m["model"] for m in read["models"]}
    assert chosen["a"]["decided"] and chosen["a"]["period_seconds"] == 86_400
    assert "repeats every 1 d" in chosen["a"]["reason"]
    assert chosen["b"]["period_seconds"] is None and "no period" in chosen["b"]["reason"]
