"""Backfilled anomalies are history: ``/api/anomalies`` filters them by source and backfill,
and the WebSocket leaves them out unless a client asks (``include_backfill=true``)."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect

from aiops.store import Store
from tests.api.support import AUTH, NO_PROMETHEUS_URL, event, make_detector, serve
from tests.api.test_events import app_over, ws_url

pytestmark = pytest.mark.no_prometheus


async def test_anomalies_filter_by_source_and_backfill(api):
    make_detector(api.store, "det-a")
    live = api.store.insert_events([event("det-a", ts=0), event("det-a", ts=60)])
    old = api.store.insert_events(
        [event("det-a", ts=120, backfill_id="bf-1"), event("det-a", ts=180, backfill_id="bf-2")]
    )

    async def ids(**params) -> list[int]:
        r = await api.client.get("/api/anomalies", params=params)
        assert r.status_code == 200, r.text
        return [e["id"] for e in r.json()["items"]]

    assert await ids() == [e.id for e in live + old]
    assert await ids(source="live") == [e.id for e in live]
    assert await ids(source="backfill") == [e.id for e in old]
    assert await ids(backfill_id="bf-2") == [old[1].id]
    page = (await api.client.get("/api/anomalies", params={"source": "backfill"})).json()
    assert [e["backfill_id"] for e in page["items"]] == ["bf-1", "bf-2"]
    bad = await api.client.get("/api/anomalies", params={"source": "replayed"})
    assert bad.status_code in (400, 422) and "source" in bad.text


async def test_the_live_feed_leaves_backfilled_anomalies_out_unless_asked(tmp_path):
    db = f"sqlite:///{tmp_path / 'aiops.db'}"
    store = Store.open(db)
    make_detector(store, "det-a")
    replayed = store.insert_events([event("det-a", ts=0), event("det-a", ts=1, backfill_id="bf-1")])
    async with serve(app_over(db, NO_PROMETHEUS_URL)) as hostport:
        async with (
            connect(ws_url(hostport, since=0, anomalies="true"), additional_headers=AUTH) as plain,
            connect(
                ws_url(hostport, since=0, anomalies="true", include_backfill="true"),
                additional_headers=AUTH,
            ) as everything,
        ):
            replays = []
            for ws in (plain, everything):  # hello, the replay, then live
                seen = []
                async with asyncio.timeout(20):
                    while (message := json.loads(await ws.recv()))["op"] != "live":
                        if message["op"] == "event":
                            seen.append(message["id"])
                replays.append(seen)
            assert replays == [[replayed[0].id], [replayed[0].id, replayed[1].id]]
            fresh = store.insert_events(
                [event("det-a", ts=2, backfill_id="bf-1"), event("det-a", ts=3)]
            )

            async def ids_until(ws, last: int) -> list[int]:
                seen: list[int] = []
                async with asyncio.timeout(20):
                    while not seen or seen[-1] < last:
                        message = json.loads(await ws.recv())
                        if message["op"] == "event":
                            seen.append(message["id"])
                return seen

            assert await ids_until(plain, fresh[1].id) == [fresh[1].id]
            assert await ids_until(everything, fresh[1].id) == [fresh[0].id, fresh[1].id]


async def test_a_backfill_run_is_checked_before_it_is_triggered(make_api):
    from tests.api.support import FakeRuns

    runs = FakeRuns()
    async with make_api(runs=runs) as api:
        make_detector(api.store, "det-a", datasource={"query": "up", "step": 60})
        make_detector(api.store, "no-source")
        ok = await api.client.post(
            "/api/runs",
            json={
                "flow": "backfill",
                "parameters": {
                    "detector_ids": ["det-a"],
                    "start": "2026-01-01T00:00:00Z",
                    "end": "2026-01-02T00:00:00Z",
                    "window": "6h",
                },
            },
        )
        assert ok.status_code == 201, ok.text
        params = ok.json()["parameters"]
        assert (
            params["backfill_id"].startswith("bf-")
            and params["start"] == "2026-01-01T00:00:00+00:00"
        )

        for parameters, status, words in [
            (
                {
                    "detector_ids": ["det-a"],
                    "start": "2026-01-02T00:00:00Z",
                    "end": "2026-01-01T00:00:00Z",
                },
                400,
                "end must be after start",
            ),
            ({"detector_ids": ["nope"], "start": "now-2h", "end": "now-1h"}, 404, "nope"),
            (
                {"detector_ids": ["no-source"], "start": "now-2h", "end": "now-1h"},
                400,
                "no datasource",
            ),
            (
                {"detector_ids": ["det-a"], "start": "now-2h", "end": "now-1h", "window": "soon"},
                400,
                "window",
            ),
            ({"detector_ids": ["det-a"], "start": "now-2h"}, 422, "parameters.end"),
            (
                {"detector_ids": ["det-a"], "start": "now-2h", "end": "now-1h", "colour": "red"},
                422,
                "parameters.colour",
            ),
            (
                {"log_jobs": ["nope"], "start": "now-2h", "end": "now-1h"},
                400,
                "no log job named 'nope'",
            ),
            ({"start": "now-2h", "end": "now-1h"}, 400, "at least one detector"),
            ({"detector_ids": ["det-a"], "start": "now-2h", "end": "now+1h"}, 400, "future"),
        ]:
            r = await api.client.post(
                "/api/runs", json={"flow": "backfill", "parameters": parameters}
            )
            assert (r.status_code, words in r.text) == (status, True), (parameters, r.text)
        assert len(runs.calls) == 1


async def test_backfill_progress_is_readable_by_id(api):
    from datetime import UTC, datetime, timedelta

    make_detector(api.store, "det-a")
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    api.store.plan_backfill(
        "bf-x",
        ["det-a"],
        [(t0, t0 + timedelta(hours=1)), (t0 + timedelta(hours=1), t0 + timedelta(hours=2))],
    )
    api.store.complete_backfill_window("bf-x", "det-a", t0, events=[event("det-a", ts=5)])
    r = await api.client.get("/api/backfills/bf-x")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "backfill_id": "bf-x",
        "total": 2,
        "done": 1,
        "failed": 0,
        "pending": 1,
        "running": 0,
        "anomalies": 1,
    }
    assert (await api.client.get("/api/backfills/bf-unknown")).status_code == 404
    assert (await api.client.get("/api/backfills/..%2Fetc")).status_code in (400, 404, 422)
