"""A stand-in Loki that speaks the documented HTTP contract (docs/loki-contract.md).

Loki cannot be installed on these machines, so the client and the log flow are tested against
this ASGI app: the same endpoints, parameters, response shapes, plain-text error bodies,
status codes and default limits as Loki's reference. It understands the LogQL the tests use:
a stream selector, line filters ``|=`` ``!=``, and ``count_over_time(<log query>[d])``
optionally inside ``sum(...)`` or ``sum by (labels) (...)``.

Use it in-process with ``httpx.ASGITransport(FakeLoki().app)``, or serve it with uvicorn.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from aiops.querylang import parse_selector, unquote

MAX_ENTRIES = 5000
MAX_QUERY_HOURS = 721
MAX_POINTS = 11000
MAX_TAIL_DELAY_SECONDS = 5
TAIL_POLL_SECONDS = 0.02  # how often an open tail looks for new entries (the stand-in's pace)

_FILTER = re.compile(r'\s*(\|=|!=)\s*("(?:[^"\\]|\\.)*")')
_METRIC = re.compile(
    r"^(?:sum(?:\s+by\s*\((?P<by>[^)]*)\))?\s*\()?\s*count_over_time\((?P<inner>.*)\[(?P<range>\d+[smhd])\]\)\s*\)?$",
    re.S,
)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class LokiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status, self.message = status, message


@dataclass
class Entry:
    ns: int
    labels: dict[str, str]
    line: str


@dataclass
class FakeLoki:
    require_tenant: str | None = None
    entries: list[Entry] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)  # statuses to answer before serving
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # tail: close the next tails with 1011 after sending this many messages (one per tail)
    tail_close_after: list[int] = field(default_factory=list)
    # tail: report this many dropped entries in the next message sent
    tail_drop_next: int = 0
    tails_open: int = 0

    def add(self, labels: dict[str, str], ns: int, line: str) -> None:
        self.entries.append(Entry(ns, dict(labels), line))

    @property
    def app(self) -> Starlette:
        routes = [
            Route("/ready", self._ready),
            Route("/loki/api/v1/query", self._query),
            Route("/loki/api/v1/query_range", self._query_range),
            Route("/loki/api/v1/labels", self._labels),
            Route("/loki/api/v1/label/{name}/values", self._label_values),
            Route("/loki/api/v1/series", self._series, methods=["GET", "POST"]),
            Route("/loki/api/v1/index/stats", self._stats),
            Route("/loki/api/v1/patterns", self._patterns),
            Route("/loki/api/v1/push", self._push, methods=["POST"]),
            WebSocketRoute("/loki/api/v1/tail", self._tail),
        ]
        app = Starlette(routes=routes)
        return app

    # plumbing ---------------------------------------------------------------------------------

    async def _guard(self, request: Request, handler) -> Response:
        params = dict(request.query_params)
        self.requests.append((request.url.path, params))
        if self.fail_next:
            status = self.fail_next.pop(0)
            return PlainTextResponse(f"injected failure {status}", status_code=status)
        if self.require_tenant and request.headers.get("X-Scope-OrgID") != self.require_tenant:
            return PlainTextResponse("no org id", status_code=401)
        try:
            return await handler(request)
        except LokiError as exc:
            return PlainTextResponse(exc.message, status_code=exc.status)

    async def _ready(self, request: Request) -> Response:
        return await self._guard(request, lambda r: _async(PlainTextResponse("ready")))

    # queries ----------------------------------------------------------------------------------

    async def _query(self, request: Request) -> Response:
        async def handle(r: Request) -> Response:
            q = r.query_params.get("query", "")
            at = _time(r.query_params.get("time"), default=_now_ns())
            metric = _METRIC.match(q.strip())
            if not metric:
                _parse_log(q)  # raises a parse error for nonsense
                raise LokiError(
                    400,
                    "log queries are not supported as an instant query type, please change your "
                    "query to a range query type",
                )
            vec = self._count(metric, at - _dur(metric["range"]), at)
            result = [{"metric": k, "value": [at / 1e9, str(v)]} for k, v in vec]
            return _success({"resultType": "vector", "result": result, "stats": {}})

        return await self._guard(request, handle)

    async def _query_range(self, request: Request) -> Response:
        async def handle(r: Request) -> Response:
            p = r.query_params
            q = p.get("query", "")
            end = _time(p.get("end"), default=_now_ns())
            start = _time(p.get("start"), default=end - 3600 * 10**9)
            if end <= start:
                raise LokiError(400, "end timestamp must not be before or equal to start time")
            if end - start > MAX_QUERY_HOURS * 3600 * 10**9:
                hours = (end - start) // (3600 * 10**9)
                raise LokiError(
                    400,
                    f"the query time range exceeds the limit (query length: {hours}h0m0s, limit: "
                    f"{MAX_QUERY_HOURS}h0m0s)",
                )
            direction = p.get("direction", "backward")
            if direction not in ("forward", "backward"):
                raise LokiError(400, f"invalid direction '{direction}'")
            metric = _METRIC.match(q.strip())
            if metric:
                step = _step(p.get("step"), start, end)
                if (end - start) // step + 1 > MAX_POINTS:
                    raise LokiError(
                        400,
                        "exceeded maximum resolution of 11,000 points per time series. Try "
                        "increasing the value of the step parameter",
                    )
                series: dict[tuple, list] = defaultdict(list)
                t = start
                while t <= end:
                    for labels, count in self._count(metric, t - _dur(metric["range"]), t):
                        series[tuple(sorted(labels.items()))].append([t / 1e9, str(count)])
                    t += step
                result = [{"metric": dict(k), "values": v} for k, v in series.items()]
                return _success({"resultType": "matrix", "result": result, "stats": {}})
            limit = int(p.get("limit", "100"))
            if limit <= 0:
                raise LokiError(400, "limit must be a positive value")
            if limit > MAX_ENTRIES:
                raise LokiError(
                    400,
                    "max entries limit per query exceeded, limit > max_entries_limit_per_query "
                    f"({limit} > {MAX_ENTRIES})",
                )
            matched = [e for e in self._select(q) if start <= e.ns < end]
            matched.sort(key=lambda e: e.ns, reverse=direction == "backward")
            page = matched[:limit]
            streams: dict[tuple, list] = {}
            for e in page:
                streams.setdefault(tuple(sorted(e.labels.items())), []).append([str(e.ns), e.line])
            result = [{"stream": dict(k), "values": v} for k, v in streams.items()]
            stats = {"summary": {"execTime": 0.001, "totalLinesProcessed": len(matched)}}
            return _success({"resultType": "streams", "result": result, "stats": stats})

        return await self._guard(request, handle)

    def _select(self, query: str) -> list[Entry]:
        matchers, filters = _parse_log(query)
        out = []
        for e in self.entries:
            if not all(_match(m, e.labels.get(m.name, "")) for m in matchers):
                continue
            if all((text in e.line) == (op == "|=") for op, text in filters):
                out.append(e)
        return out

    def _count(self, metric: re.Match, start: int, end: int) -> list[tuple[dict[str, str], int]]:
        by = [b.strip() for b in (metric["by"] or "").split(",") if b.strip()]
        wrapped = metric.group(0).lstrip().startswith("sum")
        counts: dict[tuple, int] = defaultdict(int)
        for e in self._select(metric["inner"]):
            if start < e.ns <= end:
                labels = {k: e.labels.get(k, "") for k in by} if wrapped else e.labels
                counts[tuple(sorted(labels.items()))] += 1
        return [(dict(k), v) for k, v in counts.items()]

    # metadata ---------------------------------------------------------------------------------

    async def _labels(self, request: Request) -> Response:
        async def handle(r: Request) -> Response:
            names = sorted({k for e in self._in_span(r) for k in e.labels})
            return _success(names)

        return await self._guard(request, handle)

    async def _label_values(self, request: Request) -> Response:
        async def handle(r: Request) -> Response:
            name = r.path_params["name"]
            return _success(sorted({e.labels[name] for e in self._in_span(r) if name in e.labels}))

        return await self._guard(request, handle)

    async def _series(self, request: Request) -> Response:
        async def handle(r: Request) -> Response:
            if r.method == "POST":
                match = parse_qs((await r.body()).decode()).get("match[]", [])
            else:
                match = r.query_params.getlist("match[]")
            if not match:
                raise LokiError(400, "at least one match[] argument must be provided")
            found = {tuple(sorted(e.labels.items())) for m in match for e in self._select(m)}
            return _success([dict(k) for k in sorted(found)])

        return await self._guard(request, handle)

    async def _stats(self, request: Request) -> Response:
        async def handle(r: Request) -> Response:
            entries = [
                e for e in self._select(r.query_params.get("query", "")) if e in self._in_span(r)
            ]
            streams = {tuple(sorted(e.labels.items())) for e in entries}
            return JSONResponse(
                {
                    "streams": len(streams),
                    "chunks": len(streams),
                    "entries": len(entries),
                    "bytes": sum(len(e.line) for e in entries),
                }
            )

        return await self._guard(request, handle)

    async def _patterns(self, request: Request) -> Response:
        async def handle(r: Request) -> Response:
            groups: dict[str, list[Entry]] = defaultdict(list)
            for e in self._select(r.query_params.get("query", "")):
                groups[re.sub(r"\d+", "<_>", e.line)].append(e)
            data = [
                {"pattern": pat, "level": "unknown", "samples": [[es[0].ns // 10**9, len(es)]]}
                for pat, es in groups.items()
            ]
            return _success(data)

        return await self._guard(request, handle)

    async def _push(self, request: Request) -> Response:
        async def handle(r: Request) -> Response:
            try:
                body = json.loads(await r.body())
                for stream in body["streams"]:
                    for value in stream["values"]:
                        if not isinstance(value[0], str):
                            raise LokiError(
                                400,
                                'loghttp.PushRequest.Streams: Values: ReadString: expects " or n',
                            )
                        self.add(stream["stream"], int(value[0]), value[1])
            except (ValueError, KeyError, TypeError) as exc:
                raise LokiError(400, f"malformed push request: {exc}") from None
            return Response(status_code=204)

        return await self._guard(request, handle)

    # tail -------------------------------------------------------------------------------------

    async def _tail(self, ws: WebSocket) -> None:
        """``GET /loki/api/v1/tail`` (WebSocket): the entries of a log query from ``start``
        (default an hour ago; at most ``limit`` of them, the newest, oldest first), then every
        new entry as it arrives, each message ``{"streams": [...], "dropped_entries": ...}``.
        Bad parameters are refused before the upgrade with Loki's plain-text 400; a failure
        after it closes the socket with 1011 and the reason."""
        p = ws.query_params
        self.requests.append((ws.url.path, dict(p)))
        try:
            if self.fail_next:
                status = self.fail_next.pop(0)
                raise LokiError(status, f"injected failure {status}")
            if self.require_tenant and ws.headers.get("X-Scope-OrgID") != self.require_tenant:
                raise LokiError(401, "no org id")
            q = p.get("query", "")
            if _METRIC.match(q.strip()):
                raise LokiError(400, "tail not supported for metric queries")
            _parse_log(q)
            delay = int(p.get("delay_for", "0") or 0)
            if delay < 0 or delay > MAX_TAIL_DELAY_SECONDS:
                raise LokiError(400, f"delay_for can't be greater than {MAX_TAIL_DELAY_SECONDS}")
            limit = int(p.get("limit", "100") or 100)
            if limit <= 0:
                raise LokiError(400, "limit must be a positive value")
            start = _time(p.get("start"), default=_now_ns() - 3600 * 10**9)
        except (LokiError, ValueError) as exc:
            status, message = (
                (exc.status, exc.message) if isinstance(exc, LokiError) else (400, str(exc))
            )
            await ws.send_denial_response(PlainTextResponse(message, status_code=status))
            return
        await ws.accept()
        self.tails_open += 1
        close_after = self.tail_close_after.pop(0) if self.tail_close_after else None
        import anyio

        async def watch_client(scope: anyio.CancelScope) -> None:
            while (await ws.receive())["type"] != "websocket.disconnect":
                pass
            scope.cancel()  # the client went away: stop sending

        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(watch_client, tasks.cancel_scope)
                first = sorted((e for e in self._select(q) if e.ns >= start), key=lambda e: e.ns)[
                    -limit:
                ]
                seen, pending, sent = len(self.entries), first, 0
                while True:
                    if pending or self.tail_drop_next:
                        if close_after is not None and sent >= close_after:
                            await ws.close(code=1011, reason="injected tail failure")
                            tasks.cancel_scope.cancel()
                            return
                        await ws.send_text(json.dumps(self._tail_message(pending)))
                        sent += 1
                    await anyio.sleep(TAIL_POLL_SECONDS)
                    fresh = self.entries[seen:]
                    seen += len(fresh)
                    wanted = {id(e) for e in self._select(q)} if fresh else set()
                    pending = [e for e in fresh if id(e) in wanted]
        except (WebSocketDisconnect, RuntimeError):
            return
        finally:
            self.tails_open -= 1

    def _tail_message(self, entries: list[Entry]) -> dict[str, Any]:
        streams: dict[tuple, dict[str, Any]] = {}
        for e in entries:
            key = tuple(sorted(e.labels.items()))
            streams.setdefault(key, {"stream": dict(e.labels), "values": []})["values"].append(
                [str(e.ns), e.line]
            )
        dropped = None
        if self.tail_drop_next:
            dropped = [
                {"labels": {"app": "dropped"}, "timestamp": str(_now_ns())}
                for _ in range(self.tail_drop_next)
            ]
            self.tail_drop_next = 0
        return {"streams": list(streams.values()), "dropped_entries": dropped}

    def _in_span(self, r: Request) -> list[Entry]:
        end = _time(r.query_params.get("end"), default=_now_ns())
        start = _time(r.query_params.get("start"), default=end - 6 * 3600 * 10**9)
        return [e for e in self.entries if start <= e.ns < end]


async def _async(value):
    return value


def _success(data: Any) -> JSONResponse:
    return JSONResponse({"status": "success", "data": data})


def _now_ns() -> int:
    import time

    return time.time_ns()


def _time(text: str | None, *, default: int) -> int:
    if text is None or text == "":
        return default
    if text.isdigit():
        return int(text)
    try:
        return int(float(text) * 1e9)
    except ValueError:
        pass
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1e9)
    except ValueError:
        raise LokiError(
            400, f'invalid parameter "time": cannot parse "{text}" to a valid timestamp'
        ) from None


def _step(text: str | None, start: int, end: int) -> int:
    if text is None:
        return max(10**9, (end - start) // 250)
    try:
        seconds = float(text)
    except ValueError:
        m = re.fullmatch(r"(\d+)([smhd])", text)
        if not m:
            raise LokiError(400, f'invalid parameter "step": cannot parse "{text}"') from None
        seconds = int(m[1]) * _UNITS[m[2]]
    if seconds <= 0:
        raise LokiError(
            400,
            "zero or negative query resolution step widths are not accepted. Try a positive "
            "integer",
        )
    return int(seconds * 1e9)


def _dur(text: str) -> int:
    return int(text[:-1]) * _UNITS[text[-1]] * 10**9


def _parse_log(query: str) -> tuple[tuple, list[tuple[str, str]]]:
    q = query.strip()
    if not q.startswith("{"):
        col = 1
        raise LokiError(
            400, f"parse error at line 1, col {col}: syntax error: unexpected IDENTIFIER"
        )
    depth_end = _selector_end(q)
    try:
        matchers = parse_selector(q[: depth_end + 1])
    except ValueError:
        raise LokiError(
            400, "parse error at line 1, col 2: syntax error: unexpected IDENTIFIER"
        ) from None
    rest = q[depth_end + 1 :]
    filters = []
    pos = 0
    while pos < len(rest):
        m = _FILTER.match(rest, pos)
        if not m:
            if rest[pos:].strip():
                raise LokiError(
                    400,
                    f"parse error at line 1, col {depth_end + 2 + pos}: syntax error: unexpected "
                    "IDENTIFIER",
                )
            break
        filters.append((m[1], unquote(m[2])))
        pos = m.end()
    return matchers, filters


def _selector_end(q: str) -> int:
    in_str = False
    i = 0
    while i < len(q):
        c = q[i]
        if in_str:
            if c == "\\":
                i += 1
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c == "}":
            return i
        i += 1
    raise LokiError(400, "parse error at line 1, col 1: syntax error: unexpected $end")


def _match(m: Any, value: str) -> bool:
    if m.op == "=":
        return value == m.value
    if m.op == "!=":
        return value != m.value
    hit = re.fullmatch(m.value, value) is not None
    return hit if m.op == "=~" else not hit


@contextlib.contextmanager
def serving(fake: FakeLoki) -> Iterator[str]:
    """Serve ``fake`` over real HTTP (and WebSocket) on 127.0.0.1; yields its base URL."""
    import threading

    import uvicorn

    from tests.support.prometheus import free_port

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(fake.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    started = threading.Event()
    for _ in range(200):  # up to 10 s for the socket to listen
        if server.started:
            break
        started.wait(0.05)
    assert server.started, "fake Loki did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
