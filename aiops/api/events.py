"""Live events over WebSocket: one store tailer per app, fanned out to every client.

Flows write events to the store from other processes; the store row is the truth. Each API
process runs one :class:`EventHub`: a task that polls ``store.events_after(last_id)`` every
``poll_interval`` seconds, encodes each new event once, and appends it to a bounded ring
buffer shared by every client (so 1,000 clients cost one copy of each event, not 1,000).
Several API replicas each tail the same store and serve the same stream.

Per client (:class:`Subscriber`), a cursor ``cursor``: every event with ``id <= cursor`` has
been handled (sent or filtered out). The invariant that makes resume exact:

    the ring holds every event with ``evicted_upto < id <= last_id``, in id order.

* A client connecting with ``?since=N`` starts with ``cursor = N``; while ``cursor`` is older
  than the ring (``cursor < evicted_upto``) it is served from the store, page by page
  (``events_after(cursor)``); once the ring covers it, from the ring. The tailer never writes
  into per-client buffers, and a client skips ring entries with ``id <= cursor``, so the
  switch from replay to live has no gap and no duplicate, whichever runs first.
* A client without ``since`` starts at the tailer's ``last_id`` (live from now).
* A client with ``since`` above the store's newest id resumes against a store that was reset
  (or is another one): its ids mean nothing here. It gets ``{"op": "reset", ...}`` after the
  hello and then every event of this store from the first (as with ``since=0``), so it starts
  over and still misses nothing.
* A live client whose cursor falls behind the ring (more than ``capacity`` events behind,
  beyond what it already holds in flight) is a slow consumer: it is closed with code 4008 and
  reason ``slow consumer: resume with ?since=<id>`` (the last id written to it), never
  slowing anyone else: the tailer only appends to the ring and sets wake-up flags.
* Heartbeats (``{"op": "heartbeat"}``) go out after ``heartbeat_seconds`` of silence.
* The default stream speaks incidents (``incident.opened``, ``incident.resolved``) and the
  other event types (``log.*``); per-point ``anomaly`` events only with ``?anomalies=true`` (or
  ``?type=anomaly``), and events found by a backfill only with ``?include_backfill=true``.
  Filtered events still move the cursor, so ``since`` resumes exactly whatever the filters.

Ids commit in id order (the store guarantees it: SQLite has one writer, PostgreSQL takes an
advisory lock), so tailing by id never skips a row that commits late.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import anyio
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from aiops.api.auth import deny_websocket
from aiops.api.errors import dumps, validation_error
from aiops.store.models import DETECTOR_ID_PATTERN, EVENT_ANOMALY, EVENT_TYPE_PATTERN

__all__ = ["EventHub", "Subscriber", "EventStreamQuery", "websocket_endpoint", "CLOSE_SLOW"]

log = logging.getLogger(__name__)

CLOSE_GOING_AWAY = 1001
CLOSE_SLOW = 4008
REPLAY_PAGE = 500


@dataclass(frozen=True, slots=True)
class Published:
    id: int
    detector: str | None
    type: str
    backfill: bool  # found by a backfill: only for clients that ask for backfilled events
    text: str  # the encoded {"op": "event", ...} message, shared by every client
    at: float  # time.monotonic() when published


class EventStreamQuery(BaseModel):
    """The query string of ``/api/events/ws``."""

    model_config = ConfigDict(extra="forbid")

    since: int | None = Field(None, ge=0, le=2**63 - 1)
    detector: list[Annotated[str, StringConstraints(pattern=DETECTOR_ID_PATTERN)]] = Field(
        default_factory=list
    )
    type: list[Annotated[str, StringConstraints(pattern=EVENT_TYPE_PATTERN)]] = Field(
        default_factory=list
    )
    include_backfill: bool = (
        False  # backfilled incidents and anomalies are history, not live alerts
    )
    anomalies: bool = False  # per-point anomaly events too (the default stream speaks incidents)
    token: str | None = None  # read by the auth middleware


@dataclass(eq=False)
class Subscriber:
    hub: EventHub
    cursor: int
    detectors: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    include_backfill: bool = False
    anomalies: bool = False  # per-point anomalies are sent only when asked for
    live: bool = False
    in_flight_upto: int = 0
    closing: tuple[int, str] | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None
    sent: int = 0
    last_sent: float = 0.0
    heartbeat_due: bool = False

    def matches(self, item: Published) -> bool:
        if item.backfill and not self.include_backfill:
            return False
        if item.type == EVENT_ANOMALY and not self.anomalies:
            return False
        if self.detectors and item.detector not in self.detectors:
            return False
        return not self.types or item.type in self.types

    def close_with(self, code: int, reason: str) -> None:
        """Ask the connection to close (interrupting a blocked send)."""
        if self.closing is None:
            self.closing = (code, reason[:120])
            if self.task is not None and not self.task.done():
                self.task.cancel()
            self.wake.set()


class EventHub:
    """One tailer over the store and the shared ring every client reads from."""

    def __init__(
        self,
        store: Any,
        *,
        poll_interval: float = 0.25,
        batch: int = 500,
        capacity: int = 4096,
        heartbeat_seconds: float = 15.0,
    ) -> None:
        if capacity < batch:
            raise ValueError("the ring capacity must hold at least one tail batch")
        self.store = store
        self.poll_interval = poll_interval
        self.batch = batch
        self.capacity = capacity
        self.heartbeat_seconds = heartbeat_seconds
        self.last_id = 0
        self.evicted_upto = 0
        self._ids: list[int] = []
        self._items: list[Published] = []
        self._head = 0
        self.subscribers: set[Subscriber] = set()
        self._tasks: list[asyncio.Task] = []
        self._poke = asyncio.Event()
        # plain counters, read by the metrics collector at scrape time (no lock on the hot path)
        self.tail_errors = 0
        self.events_tailed = 0
        self.events_sent = 0
        self.slow_consumers = 0
        # seconds from the latest publish to its write on the slowest client's socket
        self.fanout_seconds = 0.0

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.last_id = self.evicted_upto = await anyio.to_thread.run_sync(self.store.max_event_id)
        self._tasks = [
            asyncio.create_task(self._run(), name="aiops-event-tailer"),
            asyncio.create_task(self._heartbeats(), name="aiops-event-heartbeats"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for sub in list(self.subscribers):
            sub.close_with(
                CLOSE_GOING_AWAY, f"server shutting down: resume with ?since={sub.cursor}"
            )

    def poke(self) -> None:
        """Poll now instead of at the next interval (e.g. after an in-process insert)."""
        self._poke.set()

    # ------------------------------------------------------------------ tailing

    async def _run(self) -> None:
        delay = self.poll_interval
        while True:
            try:
                events = await anyio.to_thread.run_sync(
                    self.store.events_after, self.last_id, self.batch
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store is down or locked: keep trying, say so
                self.tail_errors += 1
                log.warning("event tailer cannot read the store: %s", exc)
                delay = min(delay * 2, 10.0)
            else:
                delay = self.poll_interval
                if events:
                    self.publish(events)
                if len(events) >= self.batch:
                    continue  # catching up: read the next batch at once
            self._poke.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), delay)

    def publish(self, events: Sequence[Any]) -> None:
        """Append events (ascending ids, all > ``last_id``) to the ring and wake the clients."""
        now = round(time.time(), 6)
        at = time.monotonic()
        self.fanout_seconds = 0.0
        for e in events:
            if e.id <= self.last_id:
                continue
            text = dumps(
                {"op": "event", "id": e.id, "published_at": now, "event": e.model_dump(mode="json")}
            ).decode()
            self._ids.append(e.id)
            self._items.append(
                Published(e.id, e.detector_id, e.type, e.backfill_id is not None, text, at)
            )
            self.last_id = e.id
        while len(self._ids) - self._head > self.capacity:
            self.evicted_upto = self._ids[self._head]
            self._head += 1
        if self._head > self.capacity:  # compact now and then (amortised O(1))
            del self._ids[: self._head], self._items[: self._head]
            self._head = 0
        self.events_tailed += len(events)
        for sub in list(self.subscribers):
            if sub.live and max(sub.cursor, sub.in_flight_upto) < self.evicted_upto:
                self._kick_slow(sub)
            else:
                sub.wake.set()

    def after(self, cursor: int) -> list[Published]:
        """Ring entries with id > cursor (the caller checked ``cursor >= evicted_upto``)."""
        i = bisect.bisect_right(self._ids, cursor, lo=self._head)
        return self._items[i:]

    def _kick_slow(self, sub: Subscriber) -> None:
        log.warning(
            "closing slow WebSocket consumer at event %d (the ring moved past it)", sub.cursor
        )
        self.slow_consumers += 1
        sub.close_with(CLOSE_SLOW, f"slow consumer: resume with ?since={sub.cursor}")

    # ------------------------------------------------------------------ one client

    def subscribe(self, query: EventStreamQuery, *, cursor: int | None = None) -> Subscriber:
        if cursor is None:
            cursor = self.last_id if query.since is None else query.since
        sub = Subscriber(
            hub=self,
            cursor=cursor,
            detectors=frozenset(query.detector),
            types=frozenset(query.type),
            include_backfill=query.include_backfill,
            anomalies=query.anomalies or EVENT_ANOMALY in query.type,
        )
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    async def _heartbeats(self) -> None:
        """One timer for every client: flag the quiet ones (no timer per client per wait)."""
        tick = min(1.0, self.heartbeat_seconds / 4)
        while True:
            await asyncio.sleep(tick)
            quiet_since = time.monotonic() - self.heartbeat_seconds
            for sub in self.subscribers:
                if sub.live and sub.last_sent <= quiet_since:
                    sub.heartbeat_due = True
                    sub.wake.set()

    async def serve(
        self, websocket: WebSocket, sub: Subscriber, since: int | None, *, reset: int | None = None
    ) -> None:
        """Send hello, the replay, then live events and heartbeats until closed. With
        ``reset`` (the store's newest id, below ``since``), a reset message follows the hello.

        A send that blocks (a client not reading) only blocks this task; the tailer closes it
        with 4008 when the ring moves past it."""
        send = websocket.send_text
        await send(
            dumps(
                {
                    "op": "hello",
                    "since": since,
                    "last_id": self.last_id,
                    "heartbeat_seconds": self.heartbeat_seconds,
                }
            ).decode()
        )
        if reset is not None:
            await send(
                dumps(
                    {
                        "op": "reset",
                        "since": since,
                        "last_id": reset,
                        "reason": f"since={since} is above the newest event id {reset}: the event "
                        "store was reset or is another one. Start over: forget the ids you kept; "
                        "every event of this store follows from the first",
                    }
                ).decode()
            )
        await self._replay(sub, send)
        sub.live = True
        await send(dumps({"op": "live", "last_id": sub.cursor}).decode())
        sub.last_sent = time.monotonic()
        while sub.closing is None:
            if sub.cursor < self.evicted_upto:
                self._kick_slow(sub)
                return
            batch = self.after(sub.cursor)
            if batch:
                sub.in_flight_upto = batch[-1].id
                count = 0
                for item in batch:
                    sub.cursor = item.id  # before the send: the frame is written before any await
                    if sub.matches(item):
                        await send(item.text)
                        count += 1
                if count:
                    sub.sent += count
                    self.events_sent += count
                    sub.last_sent = time.monotonic()
                    lag = sub.last_sent - batch[-1].at
                    if lag > self.fanout_seconds:
                        self.fanout_seconds = lag
                continue
            if sub.heartbeat_due:
                sub.heartbeat_due = False
                if time.monotonic() - sub.last_sent >= self.heartbeat_seconds * 0.5:
                    await send(
                        dumps(
                            {
                                "op": "heartbeat",
                                "last_id": sub.cursor,
                                "server_time": round(time.time(), 3),
                            }
                        ).decode()
                    )
                    sub.last_sent = time.monotonic()
                continue
            sub.wake.clear()
            if sub.cursor < self.last_id or sub.heartbeat_due:
                continue
            await sub.wake.wait()

    async def _replay(self, sub: Subscriber, send: Any) -> None:
        detector = next(iter(sub.detectors)) if len(sub.detectors) == 1 else None
        types = sorted(sub.types) or None
        # the default stream leaves per-point anomalies out: let the store skip them too
        skip = {"exclude_types": [EVENT_ANOMALY]} if not sub.anomalies and types is None else {}
        while sub.cursor < self.evicted_upto and sub.closing is None:
            covered = self.evicted_upto  # committed before the read below, so the read sees it
            page = await anyio.to_thread.run_sync(
                lambda c=sub.cursor: self.store.events_after(
                    c, REPLAY_PAGE, detector=detector, types=types, **skip
                )
            )
            count = 0
            for e in page:
                if e.id <= sub.cursor:
                    continue
                sub.cursor = e.id
                if (
                    (not sub.detectors or e.detector_id in sub.detectors)
                    and (sub.include_backfill or e.backfill_id is None)
                    and (sub.anomalies or e.type != EVENT_ANOMALY)
                ):
                    await send(
                        dumps(
                            {
                                "op": "event",
                                "id": e.id,
                                "published_at": None,
                                "event": e.model_dump(mode="json"),
                            }
                        ).decode()
                    )
                    count += 1
            sub.sent += count
            self.events_sent += count
            if len(page) < REPLAY_PAGE:
                sub.cursor = max(sub.cursor, covered)


def _ws_query(websocket: WebSocket) -> dict[str, Any]:
    params = websocket.query_params
    out: dict[str, Any] = {}
    for key in params:
        values = params.getlist(key)
        out[key] = values if key in ("detector", "type") else values[-1]
    return out


async def websocket_endpoint(websocket: WebSocket) -> None:
    hub: EventHub = websocket.app.state.api.hub
    try:
        query = EventStreamQuery.model_validate(_ws_query(websocket))
    except ValidationError as exc:
        err = validation_error(exc, "query")
        await deny_websocket(websocket.scope, websocket.receive, websocket.send, 400, err.message)
        return
    reset = None
    if query.since is not None and query.since > hub.last_id:
        newest = await anyio.to_thread.run_sync(
            hub.store.max_event_id
        )  # the tailer may lag the store
        if query.since > newest:
            reset = newest
            log.warning(
                "WebSocket client resumed with since=%d above the newest event id %d (a reset or "
                "different store): sent a reset and a replay from the first event",
                query.since,
                newest,
            )
    await websocket.accept()
    sub = hub.subscribe(query, cursor=0 if reset is not None else None)
    sender = asyncio.create_task(hub.serve(websocket, sub, query.since, reset=reset))
    sub.task = sender
    receiver = asyncio.create_task(_drain_client(websocket))
    try:
        done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
        if sender in done and not sender.cancelled():
            exc = sender.exception()
            if exc is not None and not isinstance(
                exc, (WebSocketDisconnect, OSError, RuntimeError)
            ):
                log.error("WebSocket sender failed", exc_info=exc)
                sub.closing = (1011, "internal error: resume with ?since=%d" % sub.cursor)
    finally:
        hub.unsubscribe(sub)
        for task in (sender, receiver):
            task.cancel()
        await asyncio.gather(sender, receiver, return_exceptions=True)
        if (
            receiver.done()
            and not receiver.cancelled()
            and receiver.exception() is None
            and receiver.result()
        ):
            return  # noqa: B012  the client went away: whatever the send side raised is moot
        if websocket.application_state == WebSocketState.CONNECTED:
            code, reason = sub.closing or (1000, f"closing: resume with ?since={sub.cursor}")
            with contextlib.suppress(Exception):
                await asyncio.wait_for(websocket.close(code, reason), 2.0)


async def _drain_client(websocket: WebSocket) -> bool:
    """Read (and ignore) client messages; True when the client disconnected."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return True
