"""Backfilled anomalies are history: ``/api/anomalies`` filters them by source and backfill,
and the WebSocket leaves them out unless a client asks (``include_backfill=true``)."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect

from aiops.store import Store
from tests.api.support import AUTH, event, make_detector, serve
from tests.api.test_events import app_over, ws_url

pytestmark = pytest.mark.prometheus


async def test_anomalies_filter_by_source_and_backfill(api):
    make_detector(api.store, "det-a")
    live = api.store.insert_events([event("det-a", ts=0), event("det-a", ts=60)])
    old = api.store.insert_events([event("det-a", ts=120, backfill_id="bf-1"), event("det-a", ts=180, backfill_id="bf-2")])

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


async def test_the_live_feed_leaves_backfilled_anomalies_out_unless_asked(tmp_path, prometheus):
    db = f"sqlite:///{tmp_path / 'aiops.db'}"
    store = Store.open(db)
    make_detector(store, "det-a")
    replayed = store.insert_events([event("det-a", ts=0), event("det-a", ts=1, backfill_id="bf-1")])
    async with serve(app_over(db, prometheus.url)) as hostport:
        async with (
            connect(ws_url(hostport, since=0), additional_headers=AUTH) as plain,
            connect(ws_url(hostport, since=0, include_backfill="true"), additional_headers=AUTH) as everything,
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
            fresh = store.insert_events([event("det-a", ts=2, backfill_id="bf-1"), event("det-a", ts=3)])

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
