"""Async Loki HTTP API client, held to Loki's documented contract.

Shares the request path of every datasource (:class:`aiops.sources.http.HttpDatasource`):
cache, failover, retries and health are not written twice. Loki specifics handled here:
plain-text error bodies (kept as the error message), nanosecond stream timestamps, the tenant
header, metric vs log queries, and pulling large windows without silent truncation: the
window is sliced by time and each slice paged forward under the entry limit, with duplicates
dropped at page boundaries; the result says when and why anything was cut.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import numpy as np
import orjson
import pandas as pd

from aiops.errors import BadQuery, BadResponse, InvalidInput
from aiops.logs.frame import empty_frame, make_frame
from aiops.sources.http import Fetched, HttpDatasource, RetryPolicy, TTLCache
from aiops.sources.buffer import SampleBuffer
from aiops.sources.prometheus import (
    MAX_POINTS_PER_SERIES,
    QueryResult,
    _matrix_series,
    _merge,
    _vector_series,
    range_windows,
)
from aiops.timeutil import parse_seconds, parse_unix_seconds

__all__ = ["LokiClient", "LogStreams", "LokiPattern", "DEFAULT_PAGE_LIMIT"]

log = logging.getLogger(__name__)

#: Loki's default ``max_entries_limit_per_query``.
DEFAULT_PAGE_LIMIT = 5_000
#: Loki's default ``max_query_length`` is 721h; slices stay well under it.
DEFAULT_SLICE_SECONDS = 6 * 3600.0
#: A metric range query's chunks stay under Loki's default ``max_query_length`` (721h).
MAX_QUERY_SECONDS = 720 * 3600.0
_SERVER_MAX = re.compile(r"max_entries_limit_per_query \((\d+) > (\d+)\)")

Direction = Literal["forward", "backward"]


@dataclass
class LogStreams:
    """Log lines in the shared log frame shape: ``timestamp`` (UTC, ns), ``labels``, ``line``.

    ``truncated`` is True whenever fewer lines came back than the window holds (a caller's
    ``max_entries`` cap, or a nanosecond holding more lines than one page); ``reason`` says which.
    """

    frame: pd.DataFrame
    query: str
    truncated: bool = False
    reason: str | None = None
    pages: int = 0
    streams: int = 0
    stats: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    cached: bool = False

    def __len__(self) -> int:
        return len(self.frame)

    def to_dict(self, limit: int | None = None) -> dict[str, Any]:
        rows = self.frame if limit is None else self.frame.head(limit)
        return {
            "resultType": "streams",
            "query": self.query,
            "entries": len(self.frame),
            "streams": self.streams,
            "truncated": self.truncated,
            "reason": self.reason,
            "pages": self.pages,
            "warnings": self.warnings,
            "result": [
                {"timestamp": ts.isoformat(), "ns": str(ts.value), "labels": labels, "line": line}
                for ts, labels, line in zip(
                    rows["timestamp"], rows["labels"], rows["line"], strict=True
                )
            ],
        }


@dataclass(frozen=True)
class LokiPattern:
    pattern: str
    level: str | None
    samples: list[tuple[float, int]]

    @property
    def total(self) -> int:
        return sum(c for _, c in self.samples)


def _ns(seconds: float) -> int:
    return int(round(seconds * 1e9))


def _now() -> float:
    return time.time()


class LokiClient:
    """Loki HTTP API (``/loki/api/v1``) with the shared cache, retries, failover and health."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        urls: Sequence[str] | str,
        *,
        name: str = "loki",
        tenant: str | None = None,
        retry: RetryPolicy | None = None,
        cache_ttl: float = 30.0,
        cache_max_entries: int = 256,
        timeout: float | httpx.Timeout | None = 60.0,
        headers: Mapping[str, str] | None = None,
        page_limit: int = DEFAULT_PAGE_LIMIT,
        slice_seconds: float = DEFAULT_SLICE_SECONDS,
    ) -> None:
        all_headers = dict(headers or {})
        if tenant:
            all_headers["X-Scope-OrgID"] = tenant
        self.http = HttpDatasource(
            name,
            urls,
            client,
            type="loki",
            retry=retry,
            cache=TTLCache(cache_ttl, cache_max_entries),
            timeout=timeout,
            headers=all_headers,
            ready_path="/ready",
        )
        self.name = name
        self.tenant = tenant
        if page_limit < 1:
            raise InvalidInput("page_limit must be positive", field="page_limit")
        self.page_limit = page_limit
        self.slice_seconds = slice_seconds

    # metric queries -------------------------------------------------------------------------

    async def query(self, query: str, time: Any = None) -> QueryResult:
        """Instant metric query (``/query``); a log query gets Loki's 400 as :class:`BadQuery`."""
        _check_query(query)
        params = [("query", query)]
        key = None
        if time is not None:
            at = parse_unix_seconds(time, field="time")
            params.append(("time", str(_ns(at))))
            key = ("query", query, at) if at <= _now() else None
        fetched = await self.http.request(
            "GET", "/loki/api/v1/query", params=params, query=query, cache_key=key
        )
        return _decode_metric(fetched, query)

    async def query_range(
        self,
        query: str,
        start: Any,
        end: Any,
        *,
        step: Any = None,
        limit: int | None = None,
        direction: Direction = "backward",
    ) -> QueryResult | LogStreams:
        """One ``/query_range`` request: a matrix for metric queries, streams for log queries.

        Streams come back as one page (at most ``limit`` entries, Loki's default 100); use
        :meth:`logs` to pull a whole window.
        """
        s, e = self._span(start, end)
        params = [
            ("query", query),
            ("start", str(_ns(s))),
            ("end", str(_ns(e))),
            ("direction", direction),
        ]
        if step is not None:
            params.append(("step", _fmt_seconds(parse_seconds(step, field="step"))))
        if limit is not None:
            if limit < 1:
                raise InvalidInput("limit must be a positive number of entries", field="limit")
            params.append(("limit", str(limit)))
        key = ("query_range", tuple(params)) if e <= _now() else None
        fetched = await self.http.request(
            "GET", "/loki/api/v1/query_range", params=params, query=query, cache_key=key
        )
        data = _data(fetched, query)
        if data.get("resultType") == "streams":
            frame, streams = _decode_streams(data.get("result"), fetched, query)
            body = fetched.data
            return LogStreams(
                frame=frame,
                query=query,
                pages=1,
                streams=streams,
                stats=data.get("stats") or {},
                warnings=list(body.get("warnings") or []),
                cached=fetched.cached,
                truncated=limit is not None and len(frame) >= limit,
                reason="page limit reached" if limit is not None and len(frame) >= limit else None,
            )
        return _decode_metric(fetched, query)

    # range collection (the interface the tick, the backfill and the series replay share) ------

    async def iter_range(
        self,
        query: str,
        start: Any,
        end: Any,
        step: Any,
        *,
        max_points: int = MAX_POINTS_PER_SERIES,
    ) -> AsyncIterator[QueryResult]:
        """A LogQL *metric* query over ``[start, end]`` at ``step``, chunk by chunk, oldest
        first: each chunk at most ``max_points`` steps (Loki's 11,000 points per series) and
        under Loki's 721h query length, as :meth:`PrometheusClient.iter_range` cuts them.
        A log query (its answer is streams, not a matrix) is a :class:`BadQuery`: a detector
        needs numbers, e.g. ``sum(count_over_time({app="api"} |= "error" [1m]))``."""
        _check_query(query)
        for s, e, st in range_windows(start, end, step, max_points, max_seconds=MAX_QUERY_SECONDS):
            result = await self.query_range(query, s, e, step=st)
            if isinstance(result, LogStreams):
                raise BadQuery(
                    f"query: {query!r} is a LogQL log query (its answer is log lines); a detector "
                    'needs a metric query such as sum(count_over_time({...} |= "error" [1m]))',
                    query=query,
                )
            yield result

    async def metric_range(
        self,
        query: str,
        start: Any,
        end: Any,
        step: Any,
        *,
        max_points: int = MAX_POINTS_PER_SERIES,
    ) -> QueryResult:
        """:meth:`iter_range` joined into one matrix result."""
        parts = [
            chunk async for chunk in self.iter_range(query, start, end, step, max_points=max_points)
        ]
        return parts[0] if len(parts) == 1 else _merge(parts, query)

    async def collect_range(
        self,
        query: str,
        start: Any,
        end: Any,
        step: Any,
        buffer: SampleBuffer,
        *,
        max_points: int = MAX_POINTS_PER_SERIES,
    ) -> int:
        """Stream a metric range query into a bounded buffer; returns samples fetched."""
        return await buffer.fill(self.iter_range(query, start, end, step, max_points=max_points))

    # pulling whole windows of lines ------------------------------------------------------------

    async def logs(
        self,
        query: str,
        start: Any,
        end: Any,
        *,
        max_entries: int | None = None,
        page_limit: int | None = None,
    ) -> LogStreams:
        """Every line of a log query in ``[start, end)``, oldest first.

        The window is cut into slices and each slice paged forward; at most ``max_entries``
        lines are kept (the result then says ``truncated``).
        """
        frames: list[pd.DataFrame] = []
        total = 0
        out = LogStreams(frame=empty_frame(), query=query)
        async for page in self.iter_log_pages(query, start, end, page_limit=page_limit, result=out):
            if max_entries is not None and total + len(page) > max_entries:
                page = page.iloc[: max_entries - total]
                out.truncated, out.reason = (
                    True,
                    f"max_entries={max_entries} reached before the end of the window",
                )
                frames.append(page)
                total += len(page)
                log.warning(
                    "log query cut at %d entries",
                    max_entries,
                    extra={"datasource": self.name, "query": query},
                )
                break
            frames.append(page)
            total += len(page)
        if frames:
            out.frame = pd.concat(frames, ignore_index=True)
        out.streams = len({_label_key(lbl) for lbl in out.frame["labels"]}) if total else 0
        return out

    async def iter_log_pages(
        self,
        query: str,
        start: Any,
        end: Any,
        *,
        page_limit: int | None = None,
        result: LogStreams | None = None,
    ) -> AsyncIterator[pd.DataFrame]:
        """Yield pages of new lines (frames), oldest first, for a streaming consumer."""
        _check_query(query)
        s, e = self._span(start, end)
        limit = page_limit or self.page_limit
        start_ns, end_ns = _ns(s), _ns(e)
        slice_ns = max(1, _ns(self.slice_seconds))
        slice_start = start_ns
        while slice_start < end_ns:
            slice_end = min(end_ns, slice_start + slice_ns)
            cursor = slice_start
            seen_at_cursor: set[tuple[str, str]] = set()
            while cursor < slice_end:
                page, limit = await self._page(query, cursor, slice_end, limit)
                if result is not None:
                    result.pages += 1
                    _merge_stats(result.stats, page.attrs.get("stats"))
                    result.warnings.extend(
                        w for w in page.attrs.get("warnings", []) if w not in result.warnings
                    )
                if page.empty:
                    break
                ns = page.attrs["ns"]
                keys = [
                    (_label_key(lbl), line)
                    for lbl, line in zip(page["labels"], page["line"], strict=True)
                ]
                fresh = np.array(
                    [
                        not (t == cursor and k in seen_at_cursor)
                        for t, k in zip(ns, keys, strict=True)
                    ],
                    dtype=bool,
                )
                new = page[fresh]
                last = int(ns[-1])
                full = len(page) >= limit
                if not full:
                    if not new.empty:
                        yield _plain(new)
                    break
                if last == cursor and new.empty:
                    # A single nanosecond holds more lines than a page: we cannot page past it
                    # without losing some of them. Say so, and move on.
                    if result is not None:
                        result.truncated = True
                        result.reason = f"more than {limit} lines share the timestamp {last} ns"
                    log.warning(
                        "more than %d log lines share one nanosecond; some were skipped",
                        limit,
                        extra={"datasource": self.name, "query": query},
                    )
                    cursor = last + 1
                    seen_at_cursor = set()
                    continue
                if not new.empty:
                    yield _plain(new)
                # Next page starts AT the last timestamp (lines sharing it may be unseen);
                # the ones already returned at that nanosecond are dropped as duplicates.
                at_last = {k for t, k in zip(ns, keys, strict=True) if t == last}
                seen_at_cursor = (seen_at_cursor | at_last) if last == cursor else at_last
                cursor = last
            slice_start = slice_end

    async def _page(
        self, query: str, start_ns: int, end_ns: int, limit: int
    ) -> tuple[pd.DataFrame, int]:
        params = [
            ("query", query),
            ("start", str(start_ns)),
            ("end", str(end_ns)),
            ("limit", str(limit)),
            ("direction", "forward"),
        ]
        key = ("page", tuple(params)) if end_ns <= _ns(_now()) else None
        try:
            fetched = await self.http.request(
                "GET", "/loki/api/v1/query_range", params=params, query=query, cache_key=key
            )
        except BadQuery as exc:
            m = _SERVER_MAX.search(exc.message)
            if m and int(m.group(2)) < limit:
                smaller = int(m.group(2))
                log.info(
                    "Loki allows %d entries per query; paging with that",
                    smaller,
                    extra={"datasource": self.name, "query": query},
                )
                return await self._page(query, start_ns, end_ns, smaller)
            raise
        data = _data(fetched, query)
        if data.get("resultType") != "streams":
            raise BadQuery(
                "a metric query was given where a log query (stream selector) is needed",
                datasource=self.name,
                url=fetched.url,
                query=query,
            )
        frame, _ = _decode_streams(data.get("result"), fetched, query)
        frame.attrs["ns"] = _nanoseconds(frame)
        frame.attrs["stats"] = data.get("stats") or {}
        frame.attrs["warnings"] = list(fetched.data.get("warnings") or [])
        return frame, limit

    # metadata -------------------------------------------------------------------------------

    async def labels(
        self, start: Any = None, end: Any = None, query: str | None = None
    ) -> list[str]:
        params = self._opt_span(start, end) + ([("query", query)] if query else [])
        return list(await self._success_data("/loki/api/v1/labels", params, query))

    async def label_values(
        self, name: str, start: Any = None, end: Any = None, query: str | None = None
    ) -> list[str]:
        from aiops.querylang import validate_label_name

        validate_label_name(name)
        params = self._opt_span(start, end) + ([("query", query)] if query else [])
        return list(await self._success_data(f"/loki/api/v1/label/{name}/values", params, query))

    async def series(
        self, match: Sequence[str], start: Any = None, end: Any = None
    ) -> list[dict[str, str]]:
        if not match:
            raise InvalidInput("series needs at least one match[] selector", field="match")
        form: dict[str, Any] = {"match[]": list(match)}
        for k, v in self._opt_span(start, end):
            form[k] = v
        fetched = await self.http.request(
            "POST", "/loki/api/v1/series", data=form, query=" ".join(match)
        )
        return list(_success(fetched, " ".join(match)))

    async def index_stats(self, query: str, start: Any = None, end: Any = None) -> dict[str, int]:
        """``{"streams", "chunks", "entries", "bytes"}`` (a bare object, no envelope)."""
        _check_query(query)
        params = [("query", query)] + self._opt_span(start, end)
        fetched = await self.http.request(
            "GET", "/loki/api/v1/index/stats", params=params, query=query
        )
        body = fetched.data
        if not isinstance(body, dict) or not {"streams", "chunks", "entries", "bytes"} <= set(body):
            raise BadResponse(
                "index/stats answer lacks streams/chunks/entries/bytes",
                url=fetched.url,
                query=query,
            )
        return {k: int(body[k]) for k in ("streams", "chunks", "entries", "bytes")}

    async def patterns(
        self, query: str, start: Any = None, end: Any = None, step: Any = None
    ) -> list[LokiPattern]:
        _check_query(query)
        params = [("query", query)] + self._opt_span(start, end)
        if step is not None:
            params.append(("step", _fmt_seconds(parse_seconds(step, field="step"))))
        fetched = await self.http.request(
            "GET", "/loki/api/v1/patterns", params=params, query=query
        )
        try:
            return [
                LokiPattern(
                    pattern=str(p["pattern"]),
                    level=p.get("level"),
                    samples=[(float(t), int(c)) for t, c in p.get("samples") or []],
                )
                for p in _success(fetched, query) or []
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise BadResponse(
                f"cannot decode patterns: {exc}", url=fetched.url, query=query
            ) from None

    async def push(
        self, streams: Mapping[Any, Sequence[tuple[Any, str]]] | Sequence[dict[str, Any]]
    ) -> int:
        """Push lines (for tests and demos). ``streams`` maps label dicts (as tuples of pairs)
        to ``[(time, line), ...]``, or is Loki's own list of ``{"stream", "values"}``.
        Returns the number of lines pushed; timestamps are sent as nanosecond strings."""
        if isinstance(streams, Mapping):
            items = [{"stream": dict(k), "values": v} for k, v in streams.items()]
        else:
            items = list(streams)
        body, count = [], 0
        for item in items:
            values = []
            for ts, line in item["values"]:
                ns = (
                    ts
                    if isinstance(ts, str) and ts.isdigit()
                    else str(_ns(parse_unix_seconds(ts, field="timestamp")))
                )
                values.append([ns, str(line)])
            count += len(values)
            body.append(
                {"stream": {str(k): str(v) for k, v in item["stream"].items()}, "values": values}
            )
        await self.http.request(
            "POST",
            "/loki/api/v1/push",
            content=orjson.dumps({"streams": body}),
            extra_headers={"Content-Type": "application/json"},
            decode="none",
        )
        return count

    async def ready(self) -> bool:
        report = await self.http.check_health()
        return report.status in ("up", "degraded")

    def health(self):
        return self.http.health_report()

    @property
    def stats(self):
        return self.http.stats

    # helpers --------------------------------------------------------------------------------

    @staticmethod
    def _span(start: Any, end: Any) -> tuple[float, float]:
        s = parse_unix_seconds(start, field="start")
        e = parse_unix_seconds(end, field="end")
        if e <= s:
            raise InvalidInput(f"end ({end}) must be after start ({start})", field="end")
        return s, e

    @staticmethod
    def _opt_span(start: Any, end: Any) -> list[tuple[str, str]]:
        out = []
        if start is not None:
            out.append(("start", str(_ns(parse_unix_seconds(start, field="start")))))
        if end is not None:
            out.append(("end", str(_ns(parse_unix_seconds(end, field="end")))))
        return out

    async def _success_data(
        self, path: str, params: list[tuple[str, str]], query: str | None
    ) -> Any:
        fetched = await self.http.request("GET", path, params=params, query=query)
        return _success(fetched, query)


def _fmt_seconds(seconds: float) -> str:
    return f"{seconds:g}"


def _check_query(query: Any) -> None:
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("query must be a non-empty LogQL string", field="query")


def _success(fetched: Fetched, query: str | None) -> Any:
    body = fetched.data
    if not isinstance(body, dict) or body.get("status") != "success" or "data" not in body:
        raise BadResponse("Loki answered without a success envelope", url=fetched.url, query=query)
    return body["data"]


def _data(fetched: Fetched, query: str) -> dict[str, Any]:
    data = _success(fetched, query)
    if not isinstance(data, dict) or "resultType" not in data:
        raise BadResponse("Loki answered without data.resultType", url=fetched.url, query=query)
    return data


def _decode_metric(fetched: Fetched, query: str) -> QueryResult:
    data = _data(fetched, query)
    rtype = data["resultType"]
    result = data.get("result") or []
    common: dict[str, Any] = {
        "query": query,
        "warnings": list(fetched.data.get("warnings") or []),
        "url": fetched.url,
        "cached": fetched.cached,
        "age_seconds": fetched.age_seconds,
    }
    try:
        if rtype == "matrix":
            return QueryResult("matrix", series=[_matrix_series(s) for s in result], **common)
        if rtype == "vector":
            return QueryResult("vector", series=[_vector_series(s) for s in result], **common)
        if rtype == "scalar":
            return QueryResult("scalar", scalar=(float(result[0]), float(result[1])), **common)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise BadResponse(
            f"cannot decode Loki {rtype} result: {exc}", url=fetched.url, query=query
        ) from None
    raise BadResponse(
        f"unexpected resultType {rtype!r} for a metric query", url=fetched.url, query=query
    )


def _decode_streams(result: Any, fetched: Fetched, query: str) -> tuple[pd.DataFrame, int]:
    """Streams to the log frame, oldest first (ties keep stream order)."""
    if not isinstance(result, list):
        raise BadResponse("streams result is not a list", url=fetched.url, query=query)
    ns: list[int] = []
    labels: list[dict[str, str]] = []
    lines: list[str] = []
    try:
        for stream in result:
            base = stream["stream"]
            for value in stream["values"]:
                ns.append(int(value[0]))
                lines.append(value[1])
                if len(value) > 2 and isinstance(value[2], dict):
                    # categorize-labels: structured metadata and parsed labels join the stream's
                    extra = {
                        **(value[2].get("structuredMetadata") or {}),
                        **(value[2].get("parsed") or {}),
                    }
                    labels.append({**base, **extra} if extra else base)
                else:
                    labels.append(base)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise BadResponse(
            f"cannot decode Loki streams: {type(exc).__name__}: {exc}", url=fetched.url, query=query
        ) from None
    if not ns:
        return empty_frame(), 0
    stamps = np.asarray(ns, dtype=np.int64)
    order = np.argsort(stamps, kind="stable")
    frame = make_frame([lines[i] for i in order], stamps[order], [labels[i] for i in order])
    return frame, len(result)


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.reset_index(drop=True)
    out.attrs = {}
    return out


def _nanoseconds(frame: pd.DataFrame) -> np.ndarray:
    return frame["timestamp"].dt.tz_convert(None).to_numpy(dtype="datetime64[ns]").view(np.int64)


def _label_key(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _merge_stats(into: dict[str, Any], stats: Any) -> None:
    summary = (stats or {}).get("summary") if isinstance(stats, dict) else None
    if not isinstance(summary, dict):
        return
    agg = into.setdefault("summary", {})
    for k, v in summary.items():
        if isinstance(v, int | float):
            agg[k] = agg.get(k, 0) + v
