"""``GET /api/incidents`` and ``/api/incidents/{id}``, incidents on ``/metrics`` and on the
WebSocket (the default stream speaks incidents; per-point anomalies only when asked)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from aiops.store import Store, series_key
from tests.api.support import AUTH, NO_PROMETHEUS_URL, event, make_detector, serve
from tests.api.test_events import app_over, ws_url

pytestmark = pytest.mark.no_prometheus

T0 = datetime(2026, 1, 1, tzinfo=UTC)
A = {"instance": "a"}


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def change(
    labels: dict[str, str],
    opened: int,
    *,
    new: bool = True,
    last: int | None = None,
    resolved: int | None = None,
    points: int = 1,
    score: float = 3.0,
) -> dict[str, Any]:
    """An incident change as the pipeline hands it to the store (times: seconds after T0)."""
    last = opened if last is None else last
    return {
        "series_key": series_key(labels),
        "labels": labels,
        "opened_at": at(opened),
        "opened": new,
        "last_anomalous_at": at(last),
        "resolved_at": None if resolved is None else at(resolved),
        "points": points,
        "peak": {"ts": at(last), "score": score, "value": 9.0, "expected": 1.0},
        "model_kind": "zscore",
        "params_hash": "h",
        "flow_run_id": "run-1",
    }


def seed(store: Store) -> dict[str, Any]:
    """det-a: a resolved live incident (with two anomaly rows), an open live one, and an open
    one found by backfill bf-1; det-b: an open live one."""
    make_detector(store, "det-a")
    make_detector(store, "det-b")
    store.commit_detection(
        "det-a",
        events=[event("det-a", ts=0), event("det-a", ts=60)],
        incidents=[change(A, 0, last=60, resolved=240, points=2), change(A, 600)],
    )
    store.commit_detection("det-b", incidents=[change({"instance": "b"}, 300)])
    store.plan_backfill("bf-1", ["det-a"], [(at(-86400), at(-3600))])
    store.complete_backfill_window(
        "bf-1", "det-a", at(-86400), incidents=[change({"instance": "c"}, -7200)]
    )
    return {
        i.detector_id + ":" + i.labels["instance"] + ":" + i.state: i.id
        for i in store.list_incidents()
    }


async def test_incidents_are_listed_with_filters_and_pages(api):
    ids = seed(api.store)

    async def listed(**params) -> list[int]:
        r = await api.client.get("/api/incidents", params=params)
        assert r.status_code == 200, r.text
        return [i["id"] for i in r.json()["items"]]

    assert len(await listed()) == 4
    assert await listed(detector="det-a", source="live") == [
        ids["det-a:a:resolved"],
        ids["det-a:a:open"],
    ]
    assert await listed(state="resolved") == [ids["det-a:a:resolved"]]
    assert (
        await listed(source="backfill") == await listed(backfill_id="bf-1") == [ids["det-a:c:open"]]
    )
    assert await listed(state="open", source="live") == [ids["det-a:a:open"], ids["det-b:b:open"]]
    # the incidents overlapping [since, until)
    window = {"since": at(250).isoformat(), "until": at(400).isoformat()}
    assert await listed(**window, source="live") == [ids["det-b:b:open"]]
    first = (await api.client.get("/api/incidents", params={"limit": 2})).json()
    assert first["count"] == 2 and first["next_after_id"] == first["items"][-1]["id"]
    rest = await listed(after_id=first["next_after_id"], limit=2)
    assert len(rest) == 2 and set(rest).isdisjoint(i["id"] for i in first["items"])
    newest = await listed(order="desc", limit=1)
    assert newest == [max(ids.values())]
    item = (await api.client.get("/api/incidents", params={"state": "resolved"})).json()["items"][0]
    assert item["state"] == "resolved" and item["source"] == "live" and item["points"] == 2
    assert item["labels"] == A and item["peak_score"] == 3.0 and item["severity"] == "critical"


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"state": "closed"}, 422, "state"),
        ({"source": "replayed"}, 422, "source"),
        ({"detector": "Not A Slug"}, 422, "detector"),
        ({"since": "yesterday-ish"}, 422, "since"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, 400, "since"),
        ({"after_id": "-1"}, 422, "after_id"),
        ({"limit": "0"}, 422, "limit"),
        ({"colour": "red"}, 422, "colour"),
        ({"order": "desc", "after_id": "3"}, 400, "after_id"),
    ],
)
async def test_bad_incident_filters_are_4xx_naming_the_field(api, params, status, field):
    r = await api.client.get("/api/incidents", params=params)
    assert r.status_code == status, r.text
    assert field in r.text


async def test_one_incident_comes_with_its_points(api):
    ids = seed(api.store)
    r = await api.client.get(f"/api/incidents/{ids['det-a:a:resolved']}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["incident"]["id"] == ids["det-a:a:resolved"] and body["points_truncated"] is False
    assert [datetime.fromisoformat(p["ts"]) for p in body["points"]] == [at(0), at(60)]
    one = (
        await api.client.get(
            f"/api/incidents/{ids['det-a:a:resolved']}", params={"points_limit": 1}
        )
    ).json()
    assert len(one["points"]) == 1 and one["points_truncated"] is True
    missing = await api.client.get("/api/incidents/999999")
    assert missing.status_code == 404 and "999999" in missing.text
    bad = await api.client.get("/api/incidents/abc")
    assert bad.status_code == 422 and "id" in bad.text


async def test_incidents_are_in_the_openapi_document(api):
    doc = (await api.client.get("/openapi.json")).json()
    listed = doc["paths"]["/api/incidents"]["get"]
    assert {p["name"] for p in listed["parameters"]} >= {
        "detector",
        "state",
        "source",
        "backfill_id",
        "since",
        "until",
        "after_id",
        "limit",
    }
    assert (
        "/api/incidents/{id}" in doc["paths"]
        and "404" in doc["paths"]["/api/incidents/{id}"]["get"]["responses"]
    )
    assert "anomalies" in doc["x-websocket"]["query"]
    created = doc["components"]["schemas"]["DetectorCreateRequest"]["properties"]
    assert "resolve_after" in created


async def test_metrics_show_open_incidents_and_count_them_per_detector(api):
    seed(api.store)
    text = (await api.client.get("/metrics", headers={"Authorization": ""})).text
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, []).append(s)
    open_ = sorted(
        (s.labels["detector"], s.labels["instance"]) for s in samples["aiops_incident_open"]
    )
    assert open_ == [
        ("det-a", "a"),
        ("det-b", "b"),
    ]  # live ones only: the backfilled one is history
    assert {s.labels["detector"]: s.value for s in samples["aiops_incidents_total"]} == {
        "det-a": 2,
        "det-b": 1,
    }


async def test_detectors_take_resolve_after(api):
    body = {"id": "det-r", "kind": "zscore", "resolve_after": 3}
    created = await api.client.post("/api/detectors", json=body)
    assert created.status_code == 201 and created.json()["resolve_after"] == 3
    patched = await api.client.patch("/api/detectors/det-r", json={"resolve_after": 0})
    assert patched.status_code == 200 and patched.json()["resolve_after"] == 0
    for bad in (-1, 1.5, "2", None):
        r = await api.client.patch("/api/detectors/det-r", json={"resolve_after": bad})
        assert r.status_code in (400, 422) and "resolve_after" in r.text
    default = await api.client.post("/api/detectors", json={"id": "det-d", "kind": "zscore"})
    from aiops.incidents import DEFAULT_RESOLVE_AFTER

    assert default.json()["resolve_after"] == DEFAULT_RESOLVE_AFTER


async def _until_live(ws) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(20):
        while (message := json.loads(await ws.recv()))["op"] != "live":
            if message["op"] == "event":
                seen.append(message["event"])
    return seen


async def _events_until(ws, last_id: int) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(20):
        while not seen or seen[-1]["id"] < last_id:
            message = json.loads(await ws.recv())
            if message["op"] == "event":
                seen.append(message["event"])
    return seen


async def test_the_websocket_speaks_incidents_and_points_only_when_asked(tmp_path):
    db = f"sqlite:///{tmp_path / 'aiops.db'}"
    store = Store.open(db)
    seed(store)
    async with serve(app_over(db, NO_PROMETHEUS_URL)) as hostport:
        async with (
            connect(ws_url(hostport, since=0, anomalies=None), additional_headers=AUTH) as default,
            connect(ws_url(hostport, since=0, anomalies="true"), additional_headers=AUTH) as points,
            connect(
                ws_url(hostport, since=0, anomalies=None, include_backfill="true"),
                additional_headers=AUTH,
            ) as history,
        ):
            replay = await _until_live(default)
            assert [(e["type"], e["detector_id"]) for e in replay] == [
                ("incident.opened", "det-a"),
                ("incident.resolved", "det-a"),
                ("incident.opened", "det-a"),
                ("incident.opened", "det-b"),
            ]
            assert replay[0]["payload"]["incident_id"] == replay[1]["payload"]["incident_id"]
            assert [e["type"] for e in await _until_live(points)] == [
                "anomaly",
                "anomaly",
                "incident.opened",
                "incident.resolved",
                "incident.opened",
                "incident.opened",
            ]
            backfilled = [e for e in await _until_live(history) if e["backfill_id"]]
            assert [(e["type"], e["backfill_id"]) for e in backfilled] == [
                ("incident.opened", "bf-1")
            ]
            # live: a new point and the incident it opens
            fresh = store.commit_detection(
                "det-b",
                events=[event("det-b", ts=900, labels={"instance": "z"})],
                incidents=[change({"instance": "z"}, 900)],
            )
            last = fresh[-1].id
            assert [e["type"] for e in await _events_until(default, last)] == ["incident.opened"]
            assert [e["type"] for e in await _events_until(points, last)] == [
                "anomaly",
                "incident.opened",
            ]
    store.close()
