"""The one request path every datasource client shares.

``HttpDatasource.request`` does, in this order: look in the result cache; walk the
datasource's URLs in failover order (healthy ones first, in configured order); classify the
answer (2xx ok, 400/422 a bad query that is never retried, 429/5xx/connect errors/timeouts
transient); retry transient failures with exponential backoff and jitter (tenacity) under
one policy bounded by attempts and total time; track each URL's health; wrap every failure
into the :mod:`aiops.errors` hierarchy with datasource, URL and query.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
import orjson
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from aiops.errors import (
    BadQuery,
    BadResponse,
    DatasourceError,
    DatasourceTimeout,
    DatasourceUnavailable,
)

__all__ = [
    "Fetched",
    "HttpDatasource",
    "RetryPolicy",
    "TTLCache",
    "UrlHealth",
    "DatasourceHealth",
    "DatasourceStats",
]

log = logging.getLogger(__name__)

HealthStatus = Literal["up", "degraded", "down", "unknown"]

# How long a URL marked down is skipped before it is tried again in normal order.
DOWN_COOL_OFF_SECONDS = 30.0
# A URL answering slower than this is degraded even when it answers.
SLOW_SECONDS = 2.0


@dataclass(frozen=True)
class RetryPolicy:
    """The single retry policy: transient errors only, exponential backoff with jitter.

    ``attempts`` counts whole walks over the URL list; ``max_seconds`` bounds the total time
    spent including waits. ``RetryPolicy(initial_seconds=0, jitter_seconds=0)`` makes tests
    instant without changing what is retried.
    """

    attempts: int = 3
    initial_seconds: float = 0.2
    max_wait_seconds: float = 5.0
    jitter_seconds: float = 0.2
    max_seconds: float = 30.0

    def retrying(self, on_retry: Callable[[RetryCallState], None] | None = None) -> AsyncRetrying:
        return AsyncRetrying(
            stop=stop_after_attempt(self.attempts) | stop_after_delay(self.max_seconds),
            wait=wait_exponential_jitter(
                multiplier=self.initial_seconds,
                max=self.max_wait_seconds,
                jitter=self.jitter_seconds,
            ),
            retry=retry_if_exception_type(_Transient),
            before_sleep=on_retry,
            reraise=True,
        )


class _Transient(Exception):
    """Internal: an attempt over every URL failed in a way worth retrying."""

    def __init__(self, last: DatasourceError) -> None:
        super().__init__(str(last))
        self.last = last


@dataclass
class UrlHealth:
    url: str
    status: HealthStatus = "unknown"
    latency_ms: float | None = None  # exponentially weighted
    last_error: str | None = None
    last_error_at: datetime | None = None
    last_ok_at: datetime | None = None
    consecutive_failures: int = 0
    requests: int = 0
    failures: int = 0
    observer: str | None = None  # who said so, when another process did (HttpDatasource.adopt)
    _down_since: float | None = field(default=None, repr=False)

    def record_ok(self, seconds: float) -> None:
        ms = seconds * 1000.0
        self.latency_ms = ms if self.latency_ms is None else 0.7 * self.latency_ms + 0.3 * ms
        self.requests += 1
        self.consecutive_failures = 0
        self.observer = None
        self.last_ok_at = datetime.now(UTC)
        self._down_since = None
        self.status = "degraded" if seconds > SLOW_SECONDS else "up"

    def record_failure(self, error: str, *, hard: bool) -> None:
        """``hard`` failures (connection refused, DNS) mark the URL down at once."""
        self.requests += 1
        self.failures += 1
        self.consecutive_failures += 1
        self.observer = None
        self.last_error = error
        self.last_error_at = datetime.now(UTC)
        if hard or self.consecutive_failures >= 3:
            if self.status != "down":
                self._down_since = time.monotonic()
            self.status = "down"
        else:
            self.status = "degraded"

    def skippable(self, now: float) -> bool:
        """Down and still cooling off: try the others first."""
        return (
            self.status == "down"
            and self._down_since is not None
            and now - self._down_since < DOWN_COOL_OFF_SECONDS
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "status": self.status,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 3),
            "last_error": self.last_error,
            "last_error_at": self.last_error_at.isoformat() if self.last_error_at else None,
            "last_ok_at": self.last_ok_at.isoformat() if self.last_ok_at else None,
            "consecutive_failures": self.consecutive_failures,
            "requests": self.requests,
            "failures": self.failures,
            "observer": self.observer,
        }


@dataclass
class DatasourceHealth:
    name: str
    type: str
    status: HealthStatus
    active_url: str | None
    urls: list[UrlHealth]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "status": self.status,
            "active_url": self.active_url,
            "urls": [u.to_dict() for u in self.urls],
        }


@dataclass
class DatasourceStats:
    """Counters a metrics exporter can read (the core owns no metrics registry)."""

    requests: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    retries: int = 0
    failovers: int = 0
    errors: int = 0


@dataclass(frozen=True)
class Fetched:
    """A decoded answer and where it came from."""

    data: Any
    url: str
    cached: bool = False
    age_seconds: float = 0.0
    elapsed_seconds: float = 0.0
    status_code: int = 200


class TTLCache:
    """A small LRU cache whose entries expire ``ttl`` seconds after they were stored."""

    def __init__(self, ttl: float = 30.0, max_entries: int = 1024) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._items: OrderedDict[Any, tuple[float, Any]] = OrderedDict()

    def get(self, key: Any) -> tuple[Any, float] | None:
        """Return ``(value, age_seconds)`` or None when missing or expired."""
        item = self._items.get(key)
        if item is None:
            return None
        stored, value = item
        age = time.monotonic() - stored
        if age >= self.ttl:
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return value, age

    def put(self, key: Any, value: Any) -> None:
        if self.ttl <= 0 or self.max_entries <= 0:
            return
        self._items[key] = (time.monotonic(), value)
        self._items.move_to_end(key)
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


ErrorParser = Callable[[httpx.Response], str]


def _default_error_message(response: httpx.Response) -> str:
    """The body as text (Loki's errors are plain text), or the status when it is empty."""
    text = response.text.strip()
    return text[:2000] if text else f"HTTP {response.status_code}"


class HttpDatasource:
    """One named datasource reached over HTTP at one or more URLs (failover order).

    The ``httpx.AsyncClient`` is injected and not owned: the caller closes it.
    """

    def __init__(
        self,
        name: str,
        urls: Sequence[str] | str,
        client: httpx.AsyncClient,
        *,
        type: str,
        retry: RetryPolicy | None = None,
        cache: TTLCache | None = None,
        timeout: float | httpx.Timeout | None = None,
        headers: Mapping[str, str] | None = None,
        error_message: ErrorParser = _default_error_message,
        ready_path: str = "/-/ready",
        health_sink: Callable[[HttpDatasource, UrlHealth], None] | None = None,
    ) -> None:
        if isinstance(urls, str):
            urls = [u.strip() for u in urls.split(",") if u.strip()]
        if not urls:
            raise ValueError(f"datasource {name!r} has no URL")
        self.name = name
        self.type = type
        self.urls = [u.rstrip("/") for u in urls]
        self.client = client
        self.retry = retry or RetryPolicy()
        self.cache = cache if cache is not None else TTLCache()
        self.timeout = timeout
        self.headers = dict(headers or {})
        self.error_message = error_message
        self.ready_path = ready_path
        self.health = {u: UrlHealth(u) for u in self.urls}
        # told of every attempt's outcome (aiops.sources.health shares it between processes)
        self.health_sink = health_sink
        self.active_url: str | None = None
        self.stats = DatasourceStats()

    # public ---------------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Sequence[tuple[str, str]] | None = None,
        data: Mapping[str, Any] | Sequence[tuple[str, str]] | None = None,
        content: bytes | None = None,
        extra_headers: Mapping[str, str] | None = None,
        query: str | None = None,
        cache_key: Any = None,
        decode: Literal["json", "text", "none"] = "json",
    ) -> Fetched:
        """Send one logical request; see the module docstring for what happens around it.

        ``cache_key`` (hashable) opts the request into the result cache; the caller decides
        whether a request may be cached (never a window that ends in the future).
        """
        self.stats.requests += 1
        if cache_key is not None:
            hit = self.cache.get((self.name, cache_key))
            if hit is not None:
                self.stats.cache_hits += 1
                value, age = hit
                return Fetched(
                    data=value.data,
                    url=value.url,
                    cached=True,
                    age_seconds=age,
                    elapsed_seconds=0.0,
                    status_code=value.status_code,
                )
            self.stats.cache_misses += 1

        def on_retry(state: RetryCallState) -> None:
            self.stats.retries += 1
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "retrying %s %s on datasource %s (attempt %d failed: %s)",
                method,
                path,
                self.name,
                state.attempt_number,
                exc,
                extra={"datasource": self.name, "query": query},
            )

        try:
            async for attempt in self.retry.retrying(on_retry):
                with attempt:
                    fetched = await self._walk(
                        method, path, params, data, content, extra_headers, query, decode
                    )
        except _Transient as exc:
            self.stats.errors += 1
            last = exc.last
            if isinstance(last, DatasourceTimeout):
                raise last from None
            raise DatasourceUnavailable(
                f"datasource {self.name!r} is unavailable: every URL failed "
                f"({', '.join(self.urls)}); last error: {last.message}",
                datasource=self.name,
                url=last.url,
                query=query,
                upstream_status=last.upstream_status,
            ) from None
        except DatasourceError:
            self.stats.errors += 1
            raise
        if cache_key is not None:
            self.cache.put((self.name, cache_key), fetched)
        return fetched

    def ordered_urls(self) -> list[str]:
        """Failover order: URLs not cooling off after going down first, in configured order."""
        now = time.monotonic()
        return sorted(self.urls, key=lambda u: self.health[u].skippable(now))

    def health_report(self) -> DatasourceHealth:
        urls = [self.health[u] for u in self.urls]
        statuses = {u.status for u in urls}
        if statuses == {"unknown"}:
            overall: HealthStatus = "unknown"
        elif "up" in statuses and statuses <= {"up", "unknown"}:
            overall = "up"
        elif statuses == {"down"}:
            overall = "down"
        else:
            overall = "degraded" if statuses & {"up", "degraded"} else "down"
        return DatasourceHealth(self.name, self.type, overall, self.active_url, urls)

    def adopt(self, url: str, status: str, observed_at: datetime, **fields: Any) -> bool:
        """Take another process' newer word about ``url`` (a stored health observation):
        a URL a flow found down is skipped here too, one it reached is tried again. Older
        news than this process' own is ignored. Returns whether it was taken."""
        h = self.health.get(url.rstrip("/"))
        if h is None or status not in ("up", "degraded", "down"):
            return False
        own = [t for t in (h.last_ok_at, h.last_error_at) if t is not None]
        if own and max(own) >= observed_at:
            return False
        h.status = status  # type: ignore[assignment]
        for name in (
            "latency_ms",
            "last_error",
            "last_error_at",
            "last_ok_at",
            "consecutive_failures",
            "observer",
        ):
            if name in fields:
                setattr(h, name, fields[name])
        age = max(0.0, (datetime.now(UTC) - observed_at).total_seconds())
        h._down_since = time.monotonic() - age if status == "down" else None
        return True

    def _tell(self, h: UrlHealth) -> None:
        if self.health_sink is not None:
            self.health_sink(self, h)

    async def check_health(self) -> DatasourceHealth:
        """Probe every URL's readiness endpoint once (no retries) and update health."""
        await asyncio.gather(*(self._probe(u) for u in self.urls))
        return self.health_report()

    # internals ------------------------------------------------------------------------------

    async def _probe(self, url: str) -> None:
        h = self.health[url]
        started = time.perf_counter()
        try:
            resp = await self.client.get(
                url + self.ready_path, timeout=self.timeout, headers=self.headers
            )
        except httpx.HTTPError as exc:
            h.record_failure(_describe(exc), hard=isinstance(exc, httpx.ConnectError))
            self._tell(h)
            return
        if resp.status_code == 200:
            h.record_ok(time.perf_counter() - started)
        else:
            h.record_failure(f"readiness answered HTTP {resp.status_code}", hard=False)
        self._tell(h)

    async def _walk(
        self,
        method: str,
        path: str,
        params: Any,
        data: Any,
        content: bytes | None,
        extra_headers: Mapping[str, str] | None,
        query: str | None,
        decode: str,
    ) -> Fetched:
        last: DatasourceError | None = None
        headers = {**self.headers, **(extra_headers or {})}
        for i, url in enumerate(self.ordered_urls()):
            if i > 0:
                self.stats.failovers += 1
                log.warning(
                    "failing over datasource %s to %s after: %s",
                    self.name,
                    url,
                    last.message if last else "",
                    extra={"datasource": self.name, "url": url, "query": query},
                )
            h = self.health[url]
            started = time.perf_counter()
            try:
                resp = await self.client.request(
                    method,
                    url + path,
                    params=params,
                    data=data,
                    content=content,
                    headers=headers,
                    timeout=self.timeout,
                )
            except httpx.TimeoutException as exc:
                last = DatasourceTimeout(
                    f"datasource {self.name!r} timed out at {url}: {_describe(exc)}",
                    datasource=self.name,
                    url=url,
                    query=query,
                )
                h.record_failure(last.message, hard=False)
                self._tell(h)
                continue
            except httpx.TransportError as exc:
                last = DatasourceUnavailable(
                    f"cannot reach datasource {self.name!r} at {url}: {_describe(exc)}",
                    datasource=self.name,
                    url=url,
                    query=query,
                )
                h.record_failure(last.message, hard=isinstance(exc, httpx.ConnectError))
                self._tell(h)
                continue
            elapsed = time.perf_counter() - started
            status = resp.status_code
            if 200 <= status < 300:
                h.record_ok(elapsed)
                self._tell(h)
                self.active_url = url
                return Fetched(
                    data=self._decode(resp, decode, url, query),
                    url=url,
                    elapsed_seconds=elapsed,
                    status_code=status,
                )
            message = self.error_message(resp)
            if status == 429 or status >= 500:
                h.record_failure(f"HTTP {status}: {message}", hard=False)
                self._tell(h)
                cls = DatasourceTimeout if status == 504 else DatasourceUnavailable
                last = cls(
                    f"datasource {self.name!r} answered HTTP {status} at {url}: {message}",
                    datasource=self.name,
                    url=url,
                    query=query,
                    upstream_status=status,
                )
                continue
            # The URL works; the request is wrong. Never retried, never failed over.
            h.record_ok(elapsed)
            self._tell(h)
            self.active_url = url
            if status in (400, 422):
                raise BadQuery(
                    message, datasource=self.name, url=url, query=query, upstream_status=status
                )
            raise DatasourceError(
                f"datasource {self.name!r} refused the request with HTTP {status}: {message}",
                datasource=self.name,
                url=url,
                query=query,
                upstream_status=status,
            )
        assert last is not None
        raise _Transient(last)

    def _decode(self, resp: httpx.Response, decode: str, url: str, query: str | None) -> Any:
        if decode == "none":
            return None
        if decode == "text":
            return resp.text
        try:
            return orjson.loads(resp.content)
        except orjson.JSONDecodeError as exc:
            raise BadResponse(
                f"datasource {self.name!r} answered invalid JSON: {exc}",
                datasource=self.name,
                url=url,
                query=query,
            ) from None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
