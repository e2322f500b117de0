"""``WS /api/events/ws``: replay + live without gap or duplicate, resume across an API restart,
filters, heartbeats, fan-out to 200 clients, and slow consumers closed with 4008.

Real uvicorn servers on 127.0.0.1 and the ``websockets`` client. Every wait is on a condition
(a message arriving) under a timeout; nothing sleeps to synchronise.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from aiops.api import ApiOptions, create_app
from aiops.api import events as events_module
from aiops.api.events import EventHub, EventStreamQuery
from aiops.store import Store
from tests.api.support import (
    AUTH,
    NO_PROMETHEUS_URL,
    FakeRuns,
    event,
    make_detector,
    make_settings,
    serve,
)

pytestmark = pytest.mark.no_prometheus

TIMEOUT = 20


class Client:
    """One WebSocket client collecting events in order."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.ids: list[int] = []
        self.messages: list[dict[str, Any]] = []

    async def next(self) -> dict[str, Any]:
        message = json.loads(await self.ws.recv())
        self.messages.append(message)
        if message["op"] == "event":
            self.ids.append(message["id"])
        return message

    async def until(self, predicate, timeout: float = TIMEOUT) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                message = await self.next()
                if predicate(message):
                    return message

    async def events_until(self, last_id: int, timeout: float = TIMEOUT) -> list[int]:
        if not self.ids or self.ids[-1] < last_id:
            await self.until(lambda m: m["op"] == "event" and m["id"] >= last_id, timeout)
        return self.ids


def ws_url(hostport: str, **params: Any) -> str:
    """The stream's URL; per-point anomalies included (what most tests here insert) unless
    ``anomalies`` is given."""
    params.setdefault("anomalies", "true")
    params = {k: v for k, v in params.items() if v is not None}
    query = "&".join(
        f"{k}={v}" for k, vs in params.items() for v in (vs if isinstance(vs, list) else [vs])
    )
    return f"ws://{hostport}/api/events/ws" + (f"?{query}" if query else "")


def app_over(db_url: str, prometheus_url: str, **options: Any) -> Any:
    """An app that opens its own store (as a separate API replica would)."""
    settings = make_settings(prometheus_url, db_url, loki=False)
    return create_app(
        settings, deployments=FakeRuns(), options=ApiOptions(**{"tail_interval": 0.05, **options})
    )


def insert(store: Store, detector: str, start: int, count: int, **extra: Any) -> list[int]:
    return [
        e.id
        for e in store.insert_events([event(detector, ts=start + i, **extra) for i in range(count)])
    ]


async def test_since_replays_what_was_missed_then_goes_live(tmp_path):
    db = f"sqlite:///{tmp_path / 'aiops.db'}"
    store = Store.open(db)
    make_detector(store, "det-a")
    before = insert(store, "det-a", 0, 5)
    async with serve(app_over(db, NO_PROMETHEUS_URL)) as hostport:
        async with connect(ws_url(hostport, since=before[1]), additional_headers=AUTH) as ws:
            c = Client(ws)
            hello = await c.next()
            assert hello["op"] == "hello" and hello["since"] == before[1]
            await c.until(lambda m: m["op"] == "live")
            assert c.ids == before[2:]
            live = insert(store, "det-a", 100, 3)
            assert await c.events_until(live[-1]) == before[2:] + live
            message = c.messages[-1]
            assert (
                message["event"]["detector_id"] == "det-a" and message["event"]["type"] == "anomaly"
            )
            assert message["published_at"] is not None
    store.close()


async def test_resume_across_an_api_restart_loses_and_repeats_nothing(tmp_path):
    """Two app instances over one SQLite file: events written while the API is down are
    delivered after the restart with ?since=<last id received>."""
    db = f"sqlite:///{tmp_path / 'aiops.db'}"
    store = Store.open(db)
    make_detector(store, "det-a")
    expected = insert(store, "det-a", 0, 4)
    received: list[int] = []
    async with serve(app_over(db, NO_PROMETHEUS_URL)) as hostport:
        async with connect(ws_url(hostport, since=0), additional_headers=AUTH) as ws:
            c = Client(ws)
            await c.until(lambda m: m["op"] == "live")
            expected += insert(store, "det-a", 10, 3)
            received += await c.events_until(expected[-1])
    expected += insert(store, "det-a", 20, 5)  # the API is down: a flow keeps writing
    async with serve(app_over(db, NO_PROMETHEUS_URL)) as hostport:
        async with connect(ws_url(hostport, since=received[-1]), additional_headers=AUTH) as ws:
            c = Client(ws)
            await c.until(lambda m: m["op"] == "live")
            expected += insert(store, "det-a", 30, 2)
            received += await c.events_until(expected[-1])
    assert received == expected
    assert len(set(received)) == len(received) == 14
    store.close()


async def test_a_replay_racing_live_inserts_has_no_gap_and_no_duplicate(tmp_path, monkeypatch):
    """Small replay pages and a small ring force every path: store replay, ring eviction,
    switch to live, while a writer inserts concurrently."""
    monkeypatch.setattr(events_module, "REPLAY_PAGE", 7)
    db = f"sqlite:///{tmp_path / 'aiops.db'}"
    store = Store.open(db)
    make_detector(store, "det-a")
    expected = insert(store, "det-a", 0, 60)
    async with serve(
        app_over(db, NO_PROMETHEUS_URL, tail_batch=8, ws_buffer=16, tail_interval=0.01)
    ) as hostport:

        async def writer() -> list[int]:
            out = []
            for k in range(20):
                out += await asyncio.to_thread(insert, store, "det-a", 1000 + 10 * k, 3)
            return out

        async with connect(ws_url(hostport, since=0), additional_headers=AUTH) as ws:
            c = Client(ws)
            written = await writer()  # the client is replaying while this writes
            expected += written
            assert await c.events_until(expected[-1]) == expected
    store.close()


async def test_filters_by_detector_and_type(tmp_path):
    db = f"sqlite:///{tmp_path / 'aiops.db'}"
    store = Store.open(db)
    for d in ("det-a", "det-b", "det-c"):
        make_detector(store, d)
    rows = store.insert_events(
        [
            event("det-a", ts=1),
            event("det-b", ts=1),
            event("det-c", ts=1),
            event("det-a", ts=2, type="log.new_template"),
            event("det-b", ts=2, type="log.new_template"),
        ]
    )
    a_anomaly, b_anomaly, _, a_log, b_log = (e.id for e in rows)
    async with serve(app_over(db, NO_PROMETHEUS_URL)) as hostport:
        async with connect(
            ws_url(hostport, since=0, detector="det-a"), additional_headers=AUTH
        ) as ws:
            c = Client(ws)
            await c.until(lambda m: m["op"] == "live")
            assert c.ids == [a_anomaly, a_log]
        async with connect(
            ws_url(hostport, since=0, detector=["det-a", "det-b"], type="anomaly"),
            additional_headers=AUTH,
        ) as ws:
            c = Client(ws)
            await c.until(lambda m: m["op"] == "live")
            assert c.ids == [a_anomaly, b_anomaly]
            (last,) = store.insert_events([event("det-c", ts=9), event("det-b", ts=9)])[1:]
            assert await c.events_until(last.id) == [a_anomaly, b_anomaly, last.id]
    store.close()


async def test_bad_query_parameters_refuse_the_handshake(tmp_path):
    async with serve(app_over(f"sqlite:///{tmp_path / 'aiops.db'}", NO_PROMETHEUS_URL)) as hostport:
        for params in (
            {"since": "yesterday"},
            {"since": -1},
            {"detector": "Not Valid"},
            {"colour": "red"},
        ):
            with pytest.raises(InvalidStatus) as info:
                async with connect(ws_url(hostport, **params), additional_headers=AUTH):
                    pass
            assert info.value.response.status_code == 400


async def test_heartbeats_keep_a_quiet_connection_alive(tmp_path):
    async with serve(
        app_over(f"sqlite:///{tmp_path / 'aiops.db'}", NO_PROMETHEUS_URL, ws_heartbeat_seconds=0.2)
    ) as hostport:
        async with connect(ws_url(hostport), additional_headers=AUTH) as ws:
            c = Client(ws)
            beat = await c.until(lambda m: m["op"] == "heartbeat")
            assert beat["last_id"] == 0 and beat["server_time"] > 0
            await c.until(lambda m: m["op"] == "heartbeat")


async def test_200_concurrent_clients_each_receive_every_event(tmp_path):
    db = f"sqlite:///{tmp_path / 'aiops.db'}"
    store = Store.open(db)
    make_detector(store, "det-a")
    async with serve(app_over(db, NO_PROMETHEUS_URL)) as hostport:
        url = ws_url(hostport)
        clients: list[Client] = []
        sockets = []
        try:
            async with asyncio.timeout(60):
                sockets = await asyncio.gather(
                    *(connect(url, additional_headers=AUTH, open_timeout=30) for _ in range(200))
                )
                clients = [Client(ws) for ws in sockets]
                # each client is subscribed once its hello and live marker arrive
                await asyncio.gather(*(c.until(lambda m: m["op"] == "live") for c in clients))
            expected = insert(store, "det-a", 0, 10) + insert(store, "det-a", 100, 10)
            results = await asyncio.gather(
                *(c.events_until(expected[-1], timeout=60) for c in clients)
            )
            assert all(ids == expected for ids in results)
        finally:
            await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    store.close()


async def test_shutdown_closes_clients_with_a_resume_hint(tmp_path):
    db = f"sqlite:///{tmp_path / 'aiops.db'}"
    store = Store.open(db)
    make_detector(store, "det-a")
    ids = insert(store, "det-a", 0, 2)
    async with serve(app_over(db, NO_PROMETHEUS_URL)) as hostport:
        ws = await connect(ws_url(hostport, since=0), additional_headers=AUTH)
        c = Client(ws)
        await c.until(lambda m: m["op"] == "live")
    with pytest.raises(ConnectionClosed) as info:
        async with asyncio.timeout(TIMEOUT):
            while True:
                await c.next()
    assert info.value.rcvd is not None and info.value.rcvd.code in (1001, 1012)
    assert c.ids == ids
    store.close()


# ----------------------------------------------------------------------- slow consumers (hub level)


class ListStore:
    """The two store calls the hub makes, over a list."""

    def __init__(self) -> None:
        self.rows: list[Any] = []

    def max_event_id(self) -> int:
        return self.rows[-1].id if self.rows else 0

    def events_after(
        self, after_id: int = 0, limit: int = 100, detector=None, types=None
    ) -> list[Any]:
        return [e for e in self.rows if e.id > after_id][:limit]


class FakeSocket:
    """Records what is sent; a blocked one never finishes a send (a client not reading)."""

    def __init__(self, blocked: bool = False) -> None:
        self.blocked = blocked
        self.ids: list[int] = []
        self.got = asyncio.Event()
        self.want = 0

    async def send_text(self, text: str) -> None:
        if self.blocked and json.loads(text)["op"] == "event":
            await asyncio.Event().wait()
        message = json.loads(text)
        if message["op"] == "event":
            self.ids.append(message["id"])
            if message["id"] >= self.want:
                self.got.set()


def _events(first: int, count: int) -> list[Any]:
    from datetime import UTC, datetime

    from aiops.store.models import Event

    now = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        Event(
            id=i,
            type="anomaly",
            detector_id="det-a",
            series_key="",
            labels={},
            ts=now,
            value=1.0,
            score=2.0,
            expected=None,
            lower=None,
            upper=None,
            severity="warning",
            payload={},
            model_kind=None,
            params_hash=None,
            trained_at=None,
            flow_run_id=None,
            created_at=now,
        )
        for i in range(first, first + count)
    ]


async def test_a_slow_consumer_is_closed_with_4008_and_never_slows_the_others():
    hub = EventHub(ListStore(), batch=4, capacity=8, heartbeat_seconds=60)
    fast, slow = FakeSocket(), FakeSocket(blocked=True)
    subs = {}
    for name, sock in (("fast", fast), ("slow", slow)):
        sub = hub.subscribe(EventStreamQuery(anomalies=True))
        sub.task = asyncio.create_task(hub.serve(sock, sub, None))
        subs[name] = sub
    next_id = 1
    async with asyncio.timeout(TIMEOUT):
        while subs["slow"].closing is None:
            fast.want = next_id + 3
            fast.got.clear()
            hub.publish(_events(next_id, 4))
            next_id += 4
            await fast.got.wait()  # the fast client keeps up with every batch
    code, reason = subs["slow"].closing
    assert code == 4008
    assert reason == f"slow consumer: resume with ?since={subs['slow'].cursor}"
    assert subs["slow"].cursor == 1  # it got (at most) the first event into its socket
    with pytest.raises(asyncio.CancelledError):
        await subs["slow"].task
    # the others go on receiving everything
    fast.want = next_id + 3
    fast.got.clear()
    hub.publish(_events(next_id, 4))
    async with asyncio.timeout(TIMEOUT):
        await fast.got.wait()
    assert fast.ids == list(range(1, next_id + 4))
    subs["fast"].task.cancel()


async def test_a_client_behind_the_ring_but_holding_the_batch_is_not_kicked():
    hub = EventHub(ListStore(), batch=4, capacity=4, heartbeat_seconds=60)
    sub = hub.subscribe(EventStreamQuery(anomalies=True))
    sub.live, sub.cursor, sub.in_flight_upto = True, 0, 4
    hub.publish(_events(1, 4))
    hub.publish(_events(5, 1))  # evicts id 1, which the client holds in flight
    assert sub.closing is None
    hub.publish(_events(6, 4))  # evicts up to 5: beyond what it holds
    assert sub.closing is not None and sub.closing[0] == 4008


async def test_since_above_the_newest_id_gets_a_reset_then_every_event_of_this_store(tmp_path):
    """A client resuming against a reset store (its ids are from the old one) is told to start
    over, then gets this store's events from the first: nothing missed, nothing silent."""
    db = f"sqlite:///{tmp_path / 'aiops.db'}"
    store = Store.open(db)
    make_detector(store, "det-a")
    existing = insert(store, "det-a", 0, 3)
    async with serve(app_over(db, NO_PROMETHEUS_URL)) as hostport:
        async with connect(
            ws_url(hostport, since=existing[-1] + 1000), additional_headers=AUTH
        ) as ws:
            c = Client(ws)
            hello, reset = await c.next(), await c.next()
            assert hello["op"] == "hello" and hello["since"] == existing[-1] + 1000
            assert reset["op"] == "reset" and reset["since"] == existing[-1] + 1000
            assert reset["last_id"] == existing[-1] and "start over" in reset["reason"].lower()
            await c.until(lambda m: m["op"] == "live")
            assert c.ids == existing
            live = insert(store, "det-a", 100, 2)
            assert await c.events_until(live[-1]) == existing + live
    store.close()


async def test_since_at_the_newest_id_or_ahead_of_a_lagging_tailer_is_no_reset(tmp_path):
    db = f"sqlite:///{tmp_path / 'aiops.db'}"
    store = Store.open(db)
    make_detector(store, "det-a")
    insert(store, "det-a", 0, 2)
    async with serve(app_over(db, NO_PROMETHEUS_URL, tail_interval=3600)) as hostport:
        written_later = insert(store, "det-a", 10, 2)  # committed, not yet tailed by this replica
        for since in (written_later[0], written_later[-1]):
            async with connect(ws_url(hostport, since=since), additional_headers=AUTH) as ws:
                c = Client(ws)
                await c.until(lambda m: m["op"] == "live")
                assert [m["op"] for m in c.messages if m["op"] != "event"] == ["hello", "live"]
                assert set(c.ids) <= {i for i in written_later if i > since}  # tailed or not yet
    store.close()
