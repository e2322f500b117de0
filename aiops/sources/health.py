"""Datasource health shared between processes.

Each process learns about a datasource's URLs from its own requests and probes (per-URL
:class:`~aiops.sources.http.UrlHealth`). What one process learns, the others should know:
the API's failover and ``/api/datasources/health`` must see that Loki is up because a log
job queried it a minute ago, or that a Prometheus replica is down because a tick failed
over. So every client reports each request's outcome to a :class:`HealthLedger`; the ledger
hands :class:`HealthObservation` rows to a writer (the store, in the service) at most every
``min_interval`` seconds per URL, at once when a URL's status changes. Readers merge the
stored observations with their own: the newest word about a URL wins.

Pure: no I/O here; the writer is injected (``LEDGER.writer = ...``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiops.sources.http import HttpDatasource, UrlHealth

__all__ = ["HealthObservation", "HealthLedger", "LEDGER", "observe_all", "newest"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HealthObservation:
    """What one process knows about one URL of one datasource, as of ``observed_at``."""

    datasource: str
    type: str
    url: str
    status: str
    observed_at: datetime
    observer: str = "unknown"
    latency_ms: float | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    last_ok_at: datetime | None = None
    consecutive_failures: int = 0

    @classmethod
    def of(cls, datasource: str, type: str, health: UrlHealth, observer: str) -> HealthObservation:
        times = [t for t in (health.last_ok_at, health.last_error_at) if t is not None]
        return cls(
            datasource=datasource,
            type=type,
            url=health.url,
            status=health.status,
            observed_at=max(times) if times else datetime.now(UTC),
            observer=health.observer or observer,
            latency_ms=health.latency_ms,
            last_error=health.last_error,
            last_error_at=health.last_error_at,
            last_ok_at=health.last_ok_at,
            consecutive_failures=health.consecutive_failures,
        )

    def to_dict(self) -> dict[str, Any]:
        def iso(t: datetime | None) -> str | None:
            return t.isoformat() if t else None

        return {
            "url": self.url,
            "status": self.status,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 3),
            "last_error": self.last_error,
            "last_error_at": iso(self.last_error_at),
            "last_ok_at": iso(self.last_ok_at),
            "consecutive_failures": self.consecutive_failures,
            "observed_at": iso(self.observed_at),
            "observer": self.observer,
        }


def observe_all(ds: HttpDatasource, observer: str) -> list[HealthObservation]:
    """One observation per URL of ``ds`` that has been tried (unknown ones say nothing)."""
    return [
        HealthObservation.of(ds.name, ds.type, h, observer)
        for h in (ds.health[u] for u in ds.urls)
        if h.status != "unknown"
    ]


def newest(observations: Iterable[HealthObservation]) -> dict[tuple[str, str], HealthObservation]:
    """The latest observation per ``(datasource, url)``."""
    out: dict[tuple[str, str], HealthObservation] = {}
    for o in observations:
        key = (o.datasource, o.url)
        if key not in out or o.observed_at > out[key].observed_at:
            out[key] = o
    return out


Writer = Callable[[Sequence[HealthObservation]], None]


class HealthLedger:
    """Collects request outcomes of every client in a process and passes them to ``writer``.

    ``observe`` is called by :class:`~aiops.sources.http.HttpDatasource` after each attempt at
    a URL. Without a writer it only remembers the latest observation per URL (``latest()``).
    A failing writer is logged and never breaks the request that reported.
    """

    def __init__(
        self, *, writer: Writer | None = None, observer: str = "process", min_interval: float = 30.0
    ) -> None:
        self.writer = writer
        self.observer = observer
        self.min_interval = min_interval
        self._lock = threading.Lock()
        self._latest: dict[tuple[str, str], HealthObservation] = {}
        self._written: dict[tuple[str, str], tuple[float, str]] = {}  # monotonic time, status

    def observe(self, ds: HttpDatasource, health: UrlHealth) -> None:
        obs = HealthObservation.of(ds.name, ds.type, health, self.observer)
        key = (obs.datasource, obs.url)
        now = time.monotonic()
        with self._lock:
            self._latest[key] = obs
            if self.writer is None:
                return
            last = self._written.get(key)
            if last is not None and last[1] == obs.status and now - last[0] < self.min_interval:
                return
            self._written[key] = (now, obs.status)
            writer = self.writer
        try:
            writer([obs])
        except Exception as exc:  # health sharing must never fail a query
            log.warning(
                "cannot share the health of %s %s: %s",
                obs.datasource,
                obs.url,
                exc,
                extra={"datasource": obs.datasource, "url": obs.url},
            )

    def latest(self) -> list[HealthObservation]:
        with self._lock:
            return list(self._latest.values())

    def configure(self, writer: Writer | None, observer: str | None = None) -> None:
        with self._lock:
            self.writer = writer
            if observer is not None:
                self.observer = observer
            self._written.clear()
            self._latest = {
                k: replace(v, observer=observer or v.observer) for k, v in self._latest.items()
            }


#: The process' ledger: every client built by :mod:`aiops.sources` reports here.
LEDGER = HealthLedger()
