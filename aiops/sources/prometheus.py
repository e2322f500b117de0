"""Async Prometheus HTTP API client on an injected ``httpx.AsyncClient``.

Every request goes through :class:`aiops.sources.http.HttpDatasource` (cache, failover,
retries, health). Results decode into typed values (:class:`QueryResult`, :class:`Series`)
and into pandas frames with one row per sample.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import numpy as np
import pandas as pd
import orjson

from aiops.errors import BadResponse, DatasourceError, InvalidInput
from aiops.sources.buffer import SampleBuffer
from aiops.sources.http import Fetched, HttpDatasource, RetryPolicy, TTLCache
from aiops.timeutil import parse_seconds, parse_unix_seconds

__all__ = ["PrometheusClient", "QueryResult", "Series", "MAX_POINTS_PER_SERIES", "range_windows"]

log = logging.getLogger(__name__)

#: Prometheus refuses range queries resolving to more points per series than this.
MAX_POINTS_PER_SERIES = 11_000
# Long queries go in a POST form body rather than the URL.
_POST_OVER_CHARS = 2_000

ResultType = Literal["vector", "matrix", "scalar", "string"]
_RESERVED_COLUMNS = ("timestamp", "value")


@dataclass(frozen=True)
class Series:
    """One time series: its label set and its samples (Unix seconds, float values)."""

    labels: dict[str, str]
    timestamps: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.timestamps)

    def key(self) -> tuple[tuple[str, str], ...]:
        return tuple(sorted(self.labels.items()))

    def to_series(self) -> pd.Series:
        index = pd.DatetimeIndex(seconds_to_datetimes(self.timestamps), name="timestamp")
        return pd.Series(self.values, index=index, name="value", dtype="float64")


@dataclass(frozen=True)
class QueryResult:
    """A decoded answer of ``/api/v1/query`` or ``/api/v1/query_range``."""

    result_type: ResultType
    query: str
    series: list[Series] = field(default_factory=list)
    scalar: tuple[float, float] | None = None
    string: tuple[float, str] | None = None
    warnings: list[str] = field(default_factory=list)
    url: str | None = None
    cached: bool = False
    age_seconds: float = 0.0
    chunks: int = 1

    @property
    def samples(self) -> int:
        if self.result_type in ("scalar", "string"):
            return 1
        return sum(len(s) for s in self.series)

    def to_frame(self) -> pd.DataFrame:
        """One row per sample: ``timestamp`` (UTC), ``value`` and one column per label name.

        Label columns are categorical; a series lacking a label has NA there. A label that
        clashes with ``timestamp``/``value`` is renamed ``label_<name>``. Scalars give one row
        with no labels; strings give a ``value`` column of text.
        """
        if self.result_type == "scalar" and self.scalar is not None:
            return _frame(np.array([self.scalar[0]]), np.array([self.scalar[1]]), {})
        if self.result_type == "string" and self.string is not None:
            ts = seconds_to_datetimes(np.array([self.string[0]]))
            return pd.DataFrame({"timestamp": ts, "value": [self.string[1]]})
        if not self.series:
            return _frame(np.empty(0), np.empty(0), {})
        lengths = np.fromiter((len(s) for s in self.series), np.int64, len(self.series))
        ts = np.concatenate([s.timestamps for s in self.series])
        values = np.concatenate([s.values for s in self.series])
        names: dict[str, None] = {}
        for s in self.series:
            names.update(dict.fromkeys(s.labels))
        columns: dict[str, pd.Categorical] = {}
        for name in sorted(names):
            per_series = [s.labels.get(name) for s in self.series]
            categories = sorted({v for v in per_series if v is not None})
            lookup = {v: i for i, v in enumerate(categories)}
            codes = np.array(
                [lookup.get(v, -1) if v is not None else -1 for v in per_series], np.int32
            )
            column = name if name not in _RESERVED_COLUMNS else f"label_{name}"
            columns[column] = pd.Categorical.from_codes(
                np.repeat(codes, lengths), categories=categories
            )
        return _frame(ts, values, columns)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form (the API and ``aiops query --json`` print this)."""
        out: dict[str, Any] = {
            "resultType": self.result_type,
            "query": self.query,
            "cached": self.cached,
            "age_seconds": round(self.age_seconds, 3),
            "warnings": self.warnings,
        }
        if self.result_type == "scalar":
            out["result"] = _point(*self.scalar) if self.scalar else None
        elif self.result_type == "string":
            out["result"] = list(self.string) if self.string else None
        elif self.result_type == "vector":
            out["result"] = [
                {"metric": s.labels, "value": _point(s.timestamps[0], s.values[0])}
                for s in self.series
                if len(s)
            ]
        else:
            out["result"] = [
                {
                    "metric": s.labels,
                    "values": [_point(t, v) for t, v in zip(s.timestamps, s.values)],
                }
                for s in self.series
            ]
        return out


def _point(ts: float, value: float) -> list[Any]:
    """A sample as JSON: values stay numbers where finite, Prometheus-style strings otherwise."""
    v = float(value)
    return [
        float(ts),
        v if math.isfinite(v) else ("NaN" if math.isnan(v) else ("+Inf" if v > 0 else "-Inf")),
    ]


def seconds_to_datetimes(seconds: np.ndarray) -> pd.DatetimeIndex:
    """Unix seconds (millisecond precision, as Prometheus gives them) to UTC nanosecond times."""
    ms = np.round(np.asarray(seconds, dtype=np.float64) * 1000.0).astype(np.int64)
    return pd.DatetimeIndex((ms * 1_000_000).view("datetime64[ns]"), tz="UTC")


def _frame(ts: np.ndarray, values: np.ndarray, labels: dict[str, Any]) -> pd.DataFrame:
    data: dict[str, Any] = {
        "timestamp": seconds_to_datetimes(ts),
        "value": values.astype(np.float64, copy=False),
    }
    data.update(labels)
    return pd.DataFrame(data)


class PrometheusClient:
    """Prometheus HTTP API (``/api/v1``) with caching, retries, failover and health.

    ``client`` is an ``httpx.AsyncClient`` you own (pass one with ``transport=MockTransport``
    in tests). ``urls`` are one datasource's replicas, tried in order.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        urls: Sequence[str] | str,
        *,
        name: str = "prometheus",
        retry: RetryPolicy | None = None,
        cache_ttl: float = 30.0,
        cache_max_entries: int = 1024,
        timeout: float | httpx.Timeout | None = 30.0,
        max_concurrency: int = 8,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.http = HttpDatasource(
            name,
            urls,
            client,
            type="prometheus",
            retry=retry,
            cache=TTLCache(cache_ttl, cache_max_entries),
            timeout=timeout,
            headers=headers,
            error_message=_error_message,
            ready_path="/-/ready",
        )
        self.name = name
        self.max_concurrency = max_concurrency
        self._limit = asyncio.Semaphore(max_concurrency)

    # queries --------------------------------------------------------------------------------

    async def query(
        self, query: str, time: Any = None, *, timeout: str | None = None
    ) -> QueryResult:
        """Instant query at ``time`` (default: the server's now)."""
        _check_query(query)
        params = [("query", query)]
        if time is not None:
            at = parse_unix_seconds(time, field="time")
            params.append(("time", _fmt(at)))
            # A past instant never changes; a future one is not cached.
            key = ("query", query, at) if at <= _now() else None
        else:
            # Now-relative: answered from a result at most TTL old, and the answer says so.
            key = ("query", query, None)
        if timeout:
            params.append(("timeout", timeout))
        fetched = await self._api("/api/v1/query", params, query=query, cache_key=key)
        return _decode_query(fetched, query)

    async def query_range(
        self,
        query: str,
        start: Any,
        end: Any,
        step: Any,
        *,
        max_points: int = MAX_POINTS_PER_SERIES,
    ) -> QueryResult:
        """Range query; windows over ``max_points`` per series are split and merged."""
        windows = self._windows(query, start, end, step, max_points)
        if len(windows) == 1:
            return await self._range_once(query, *windows[0])

        async def one(w: tuple[float, float, float]) -> QueryResult:
            async with self._limit:
                return await self._range_once(query, *w)

        parts = await asyncio.gather(*(one(w) for w in windows))
        return _merge(parts, query)

    async def iter_range(
        self,
        query: str,
        start: Any,
        end: Any,
        step: Any,
        *,
        max_points: int = MAX_POINTS_PER_SERIES,
    ) -> AsyncIterator[QueryResult]:
        """Stream a range query chunk by chunk, oldest first (each under ``max_points``)."""
        for window in self._windows(query, start, end, step, max_points):
            yield await self._range_once(query, *window)

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
        """Stream a range query into a bounded buffer; returns samples fetched."""
        return await buffer.fill(self.iter_range(query, start, end, step, max_points=max_points))

    async def query_many(
        self, queries: Iterable[str], time: Any = None
    ) -> list[QueryResult | DatasourceError | InvalidInput]:
        """Run instant queries concurrently (at most ``max_concurrency`` at once).

        Each slot holds the result or the error of that query, in input order.
        """

        async def one(q: str) -> QueryResult | DatasourceError | InvalidInput:
            async with self._limit:
                try:
                    return await self.query(q, time)
                except (DatasourceError, InvalidInput) as exc:
                    return exc

        return list(await asyncio.gather(*(one(q) for q in queries)))

    # metadata -------------------------------------------------------------------------------

    async def series(
        self, match: Sequence[str], start: Any = None, end: Any = None
    ) -> list[dict[str, str]]:
        if not match:
            raise InvalidInput("series needs at least one match[] selector", field="match")
        params = [("match[]", m) for m in match] + self._span(start, end)
        return list(await self._data("/api/v1/series", params, query=" ".join(match)))

    async def label_names(
        self, match: Sequence[str] = (), start: Any = None, end: Any = None
    ) -> list[str]:
        params = [("match[]", m) for m in match] + self._span(start, end)
        return list(await self._data("/api/v1/labels", params))

    async def label_values(
        self, label: str, match: Sequence[str] = (), start: Any = None, end: Any = None
    ) -> list[str]:
        from aiops.querylang import validate_label_name

        validate_label_name(label)
        params = [("match[]", m) for m in match] + self._span(start, end)
        return list(await self._data(f"/api/v1/label/{label}/values", params))

    async def metadata(
        self, metric: str | None = None, limit: int | None = None
    ) -> dict[str, list[dict]]:
        params: list[tuple[str, str]] = []
        if metric:
            params.append(("metric", metric))
        if limit is not None:
            params.append(("limit", str(int(limit))))
        return dict(await self._data("/api/v1/metadata", params))

    async def build_info(self) -> dict[str, str]:
        return dict(await self._data("/api/v1/status/buildinfo", []))

    async def ready(self) -> bool:
        """True when some URL answers its readiness endpoint (``/-/ready``)."""
        report = await self.http.check_health()
        return report.status in ("up", "degraded")

    def health(self):  # -> DatasourceHealth
        return self.http.health_report()

    @property
    def stats(self):
        return self.http.stats

    # internals ------------------------------------------------------------------------------

    def _windows(
        self, query: str, start: Any, end: Any, step: Any, max_points: int
    ) -> list[tuple[float, float, float]]:
        _check_query(query)
        out = range_windows(start, end, step, max_points)
        if len(out) > 1:
            log.debug(
                "split range query into %d chunks of <= %d points",
                len(out),
                max_points,
                extra={"datasource": self.name, "query": query},
            )
        return out

    async def _range_once(self, query: str, start: float, end: float, step: float) -> QueryResult:
        params = [
            ("query", query),
            ("start", _fmt(start)),
            ("end", _fmt(end)),
            ("step", _fmt(step)),
        ]
        # A window that ends in the future is still moving: never cached.
        key = ("query_range", query, start, end, step) if end <= _now() else None
        fetched = await self._api("/api/v1/query_range", params, query=query, cache_key=key)
        return _decode_query(fetched, query)

    @staticmethod
    def _span(start: Any, end: Any) -> list[tuple[str, str]]:
        out = []
        if start is not None:
            out.append(("start", _fmt(parse_unix_seconds(start, field="start"))))
        if end is not None:
            out.append(("end", _fmt(parse_unix_seconds(end, field="end"))))
        return out

    async def _api(
        self,
        path: str,
        params: list[tuple[str, str]],
        *,
        query: str | None = None,
        cache_key: Any = None,
    ) -> Fetched:
        if query is not None and len(query) > _POST_OVER_CHARS:
            form: dict[str, list[str]] = {}
            for k, v in params:
                form.setdefault(k, []).append(v)
            return await self.http.request(
                "POST", path, data=form, query=query, cache_key=cache_key
            )
        return await self.http.request("GET", path, params=params, query=query, cache_key=cache_key)

    async def _data(
        self, path: str, params: list[tuple[str, str]], *, query: str | None = None
    ) -> Any:
        fetched = await self._api(path, params, query=query)
        return _envelope(fetched, query)["data"]


def range_windows(
    start: Any, end: Any, step: Any, max_points: int, *, max_seconds: float | None = None
) -> list[tuple[float, float, float]]:
    """``[start, end]`` at ``step`` cut into ``(start, end, step)`` chunks of at most
    ``max_points`` evaluation timestamps each (and at most ``max_seconds`` long). The chunks'
    timestamps are exactly ``start, start + step, ...``: no overlap, no gap. Shared by the
    Prometheus and Loki clients' range collection."""
    s = parse_unix_seconds(start, field="start")
    e = parse_unix_seconds(end, field="end")
    st = parse_seconds(step, field="step")
    if e < s:
        raise InvalidInput(f"end ({end}) is before start ({start})", field="end")
    if max_points < 2:
        raise InvalidInput("max_points must be at least 2", field="max_points")
    if max_seconds is not None:
        max_points = max(1, min(max_points, math.floor(max_seconds / st) + 1))
    points = math.floor((e - s) / st) + 1
    if points <= max_points:
        return [(s, e, st)]
    out = []
    first = 0
    while first < points:
        last = min(first + max_points, points) - 1
        out.append((s + first * st, min(e, s + last * st), st))
        first = last + 1
    return out


def _now() -> float:
    return time.time()


def _fmt(x: float) -> str:
    return repr(float(x)) if not float(x).is_integer() else str(int(x))


def _check_query(query: Any) -> None:
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("query must be a non-empty PromQL string", field="query")


def _error_message(response: httpx.Response) -> str:
    """Prometheus' own words: ``{"status":"error","errorType":"bad_data","error":"..."}``."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        text = response.text.strip()
        return text[:2000] if text else f"HTTP {response.status_code}"
    if isinstance(body, dict) and body.get("error"):
        kind = body.get("errorType")
        return f"{kind}: {body['error']}" if kind else str(body["error"])
    return f"HTTP {response.status_code}"


def _envelope(fetched: Fetched, query: str | None) -> dict[str, Any]:
    body = fetched.data
    if not isinstance(body, dict) or body.get("status") != "success" or "data" not in body:
        raise BadResponse(
            "Prometheus answered without a success envelope",
            datasource="prometheus",
            url=fetched.url,
            query=query,
        )
    return body


def _decode_query(fetched: Fetched, query: str) -> QueryResult:
    body = _envelope(fetched, query)
    data = body["data"]
    try:
        rtype = data["resultType"]
        result = data["result"]
        common: dict[str, Any] = {
            "query": query,
            "warnings": list(body.get("warnings") or []),
            "url": fetched.url,
            "cached": fetched.cached,
            "age_seconds": fetched.age_seconds,
        }
        if rtype == "matrix":
            return QueryResult("matrix", series=[_matrix_series(s) for s in result], **common)
        if rtype == "vector":
            return QueryResult("vector", series=[_vector_series(s) for s in result], **common)
        if rtype == "scalar":
            return QueryResult("scalar", scalar=(float(result[0]), float(result[1])), **common)
        if rtype == "string":
            return QueryResult("string", string=(float(result[0]), str(result[1])), **common)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise BadResponse(
            f"cannot decode Prometheus result: {type(exc).__name__}: {exc}",
            url=fetched.url,
            query=query,
        ) from None
    raise BadResponse(f"unknown resultType {rtype!r}", url=fetched.url, query=query)


def _matrix_series(s: dict[str, Any]) -> Series:
    values = s.get("values")
    if values is None:
        # Native histograms come as "histograms"; not decoded into float samples.
        return Series(dict(s["metric"]), np.empty(0), np.empty(0))
    n = len(values)
    ts = np.fromiter((p[0] for p in values), np.float64, n)
    vs = np.array([p[1] for p in values], dtype=np.float64)
    return Series(dict(s["metric"]), ts, vs)


def _vector_series(s: dict[str, Any]) -> Series:
    point = s.get("value")
    if point is None:
        return Series(dict(s["metric"]), np.empty(0), np.empty(0))
    return Series(dict(s["metric"]), np.array([float(point[0])]), np.array([float(point[1])]))


def _merge(parts: list[QueryResult], query: str) -> QueryResult:
    """Join chunked range results: samples of one label set concatenated in time order."""
    by_key: dict[tuple, list[Series]] = {}
    for part in parts:
        for s in part.series:
            by_key.setdefault(s.key(), []).append(s)
    series = [
        pieces[0]
        if len(pieces) == 1
        else Series(
            pieces[0].labels,
            np.concatenate([p.timestamps for p in pieces]),
            np.concatenate([p.values for p in pieces]),
        )
        for pieces in by_key.values()
    ]
    warnings = [w for p in parts for w in p.warnings]
    return QueryResult(
        "matrix",
        query=query,
        series=series,
        warnings=list(dict.fromkeys(warnings)),
        url=parts[-1].url,
        cached=all(p.cached for p in parts),
        age_seconds=max(p.age_seconds for p in parts),
        chunks=len(parts),
    )
