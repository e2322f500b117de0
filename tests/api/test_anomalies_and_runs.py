"""``GET /api/anomalies`` (paginated by id) and ``/api/runs`` with an injected trigger."""

from __future__ import annotations

import uuid

import pytest

from aiops.api.errors import RunnerUnavailable
from aiops.errors import NotFound
from tests.api.support import FakeRuns, event, make_detector

pytestmark = pytest.mark.no_prometheus  # the store and a fake run trigger only


async def test_anomalies_are_paged_by_id_without_loss_or_overlap(api):
    make_detector(api.store, "det-a")
    make_detector(api.store, "det-b")
    inserted = api.store.insert_events(
        [event("det-a" if i % 3 else "det-b", ts=i * 60, labels={"i": str(i)}) for i in range(25)]
        + [event("det-a", ts=5, type="log.new_template")]
    )
    anomalies = [e.id for e in inserted if e.type == "anomaly"]
    seen, after, pages = [], None, 0
    while True:
        params = {"limit": 10} | ({"after_id": after} if after is not None else {})
        page = (await api.client.get("/api/anomalies", params=params)).json()
        seen += [e["id"] for e in page["items"]]
        pages += 1
        after = page["next_after_id"]
        if after is None:
            break
    assert seen == anomalies and pages == 3


async def test_anomalies_filter_by_detector_and_time(api):
    make_detector(api.store, "det-a")
    make_detector(api.store, "det-b")
    api.store.insert_events([event("det-a", ts=i * 60) for i in range(10)] + [event("det-b", ts=0)])
    page = (
        await api.client.get(
            "/api/anomalies",
            params={
                "detector": "det-a",
                "since": "2026-01-01T00:02:00Z",
                "until": "2026-01-01T00:05:00Z",
            },
        )
    ).json()
    assert [e["ts"] for e in page["items"]] == [
        "2026-01-01T00:02:00Z",
        "2026-01-01T00:03:00Z",
        "2026-01-01T00:04:00Z",
    ]
    assert {e["detector_id"] for e in page["items"]} == {"det-a"}
    assert page["next_after_id"] is None and page["count"] == 3


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"since": "last tuesday"}, "since"),
        ({"limit": 0}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"after_id": -1}, "after_id"),
        ({"detector": "Not A Slug"}, "detector"),
        ({"colour": "red"}, "unknown field"),
        (
            {"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
            "since must not be after until",
        ),
    ],
)
async def test_bad_anomaly_queries_are_4xx(api, params, words):
    r = await api.client.get("/api/anomalies", params=params)
    assert r.status_code in (400, 422), r.text
    assert words in r.json()["error"]


async def test_post_runs_triggers_the_named_deployment_and_returns_the_run(api):
    make_detector(api.store, "d1")
    r = await api.client.post(
        "/api/runs",
        json={
            "flow": "detect-metrics",
            "parameters": {"detector_ids": ["d1"]},
            "idempotency_key": "k1",
        },
    )
    assert r.status_code == 201, r.text
    run = r.json()
    assert (
        run["state"] == "SCHEDULED"
        and run["deployment"] == "detect-metrics/default"
        and run["url"].endswith(run["id"])
    )
    assert api.runs.calls == [("detect-metrics/default", {"detector_ids": ["d1"]}, "k1")]
    got = (await api.client.get(f"/api/runs/{run['id']}")).json()
    assert got["id"] == run["id"] and got["state"] == "SCHEDULED"


async def test_runs_refuse_unknown_flows_and_bad_ids(api):
    r = await api.client.post("/api/runs", json={"flow": "rm-rf"})
    assert r.status_code == 422 and "flow" in r.json()["error"]
    r = await api.client.get("/api/runs/not-a-uuid")
    assert r.status_code == 422
    r = await api.client.get(f"/api/runs/{uuid.uuid4()}")
    assert r.status_code == 404


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (NotFound("deployment 'detect-metrics/default' not found"), 404),
        (RunnerUnavailable("cannot reach the Prefect server"), 503),
    ],
)
async def test_trigger_failures_map_to_clear_statuses(make_api, error, status):
    async with make_api(runs=FakeRuns(fail_with=error)) as api:
        r = await api.client.post("/api/runs", json={"flow": "detect-metrics"})
    assert r.status_code == status
    assert r.json()["error"] == error.message
