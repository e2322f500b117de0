"""The service's own metrics on an app-owned ``CollectorRegistry`` (never the global one).

* request count and latency per route template (a pure ASGI middleware),
* WebSocket clients, events sent, slow consumers closed, events tailed,
* datasource client counters (requests, cache hits/misses, retries, failovers, errors) and
  per-URL health, read at scrape time from each client's ``DatasourceStats``; the health
  includes what the background probes and the flows shared through the store
  (``aiops_datasource_up{datasource, url}``: 1 reachable at the latest check, 0 down),
* ``aiops_anomaly_score{detector=..., <series labels>}``: the latest score of every
  detector's series (normal ones too, so alerts can use ``> 1``), from
  ``store.latest_scores()`` at scrape time. Series labels are
  sanitised: ``__name__`` becomes ``metric``, invalid characters become ``_``, and a series
  label that clashes with ``detector`` becomes ``exported_detector``.
* ``aiops_incident_open{detector=..., <series labels>}``: 1 per live incident open now (a series
  without one has no sample: alert on its presence), and ``aiops_incidents_total{detector=...}``,
  the live incidents each detector has opened, from ``store.incident_metrics()`` at scrape time.
* ``aiops_incident_alert{detector, series, severity, incident, url}``: 1 per open live incident,
  what the alerting rules of ``deployments/prometheus/aiops-rules.yml`` fire on (``series`` is the
  series key, ``url`` the incident's view on the page).
* ``aiops_flow_*``: what the flows report about themselves wherever they ran (tick duration
  and lag, detectors by outcome, samples collected and dropped, collection errors per
  datasource, log jobs, store errors: :data:`aiops.flowstats.FLOW_METRICS`), and
  ``aiops_backfill_windows{backfill, status}`` of unfinished backfills, read from the store
  at scrape time.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ApiMetrics", "MetricsMiddleware", "sanitize_labels", "render"]

log = logging.getLogger(__name__)

_INVALID = re.compile(r"[^a-zA-Z0-9_]")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_STATUS_VALUE = {"up": 1.0, "degraded": 0.5, "down": 0.0}


def sanitize_labels(
    labels: Mapping[str, str], reserved: Iterable[str] = ("detector",)
) -> dict[str, str]:
    """Series labels as valid Prometheus label names that do not clash with ours."""
    taken = set(reserved)
    out: dict[str, str] = {}
    for name, value in labels.items():
        if name == "__name__":
            clean = "metric"
        else:
            clean = _INVALID.sub("_", name) or "_"
            if clean[0].isdigit():
                clean = "_" + clean
            if clean.startswith("__"):  # reserved for Prometheus' own labels
                clean = "exported_" + clean.lstrip("_")
        while clean in taken or clean in out:
            clean = "exported_" + clean
        out[clean] = str(value)
    return out


class _DatasourceCollector(Collector):
    """Reads ``DatasourceStats`` and URL health of every client at scrape time."""

    def __init__(self, clients: Callable[[], Mapping[str, Any]]) -> None:
        self._clients = clients

    def collect(self) -> Iterable[Metric]:
        counters = {
            "requests": CounterMetricFamily(
                "aiops_datasource_requests",
                "Logical requests to the datasource",
                labels=["datasource", "type"],
            ),
            "cache_hits": CounterMetricFamily(
                "aiops_datasource_cache_hits",
                "Requests answered from the result cache",
                labels=["datasource", "type"],
            ),
            "cache_misses": CounterMetricFamily(
                "aiops_datasource_cache_misses",
                "Cacheable requests not in the cache",
                labels=["datasource", "type"],
            ),
            "retries": CounterMetricFamily(
                "aiops_datasource_retries",
                "Retries after transient failures",
                labels=["datasource", "type"],
            ),
            "failovers": CounterMetricFamily(
                "aiops_datasource_failovers",
                "Moves to the next URL of a datasource",
                labels=["datasource", "type"],
            ),
            "errors": CounterMetricFamily(
                "aiops_datasource_errors",
                "Requests that failed after retries and failover",
                labels=["datasource", "type"],
            ),
        }
        up = GaugeMetricFamily(
            "aiops_datasource_url_up",
            "URL health: 1 up, 0.5 degraded, 0 down",
            labels=["datasource", "url"],
        )
        latency = GaugeMetricFamily(
            "aiops_datasource_url_latency_seconds",
            "Smoothed response latency per URL",
            labels=["datasource", "url"],
        )
        failures = GaugeMetricFamily(
            "aiops_datasource_url_consecutive_failures",
            "Consecutive failures per URL",
            labels=["datasource", "url"],
        )
        reachable = GaugeMetricFamily(
            "aiops_datasource_up",
            "1 when the URL answered at its latest check (background probe, a flow's or the "
            "API's request), 0 when down",
            labels=["datasource", "url"],
        )
        for name, client in self._clients().items():
            stats = client.stats
            kind = client.http.type
            for key, family in counters.items():
                family.add_metric([name, kind], float(getattr(stats, key)))
            for h in client.health().urls:
                if h.status in _STATUS_VALUE:
                    up.add_metric([name, h.url], _STATUS_VALUE[h.status])
                    reachable.add_metric([name, h.url], 0.0 if h.status == "down" else 1.0)
                if h.latency_ms is not None:
                    latency.add_metric([name, h.url], h.latency_ms / 1000.0)
                failures.add_metric([name, h.url], float(h.consecutive_failures))
        yield from counters.values()
        yield from (up, reachable, latency, failures)


class _ScoreCollector(Collector):
    """``aiops_anomaly_score`` from the store's latest anomaly per detector and series."""

    def __init__(self, store: Callable[[], Any]) -> None:
        self._store = store

    def collect(self) -> Iterable[Metric]:
        score = Metric(
            "aiops_anomaly_score",
            "Latest anomaly score per detector and series (>1 is anomalous)",
            "gauge",
        )
        seen = Metric(
            "aiops_anomaly_last_timestamp_seconds",
            "Time of the latest anomaly per detector and series",
            "gauge",
        )
        store = self._store()
        if store is None:
            return
        try:
            latest = store.latest_scores()
        except Exception as exc:  # a scrape must not fail because the store is busy
            log.warning("cannot read latest anomaly scores for /metrics: %s", exc)
            latest = []
        for event in latest:
            labels = {"detector": event.detector_id or "", **sanitize_labels(event.labels)}
            if event.score is not None:
                score.add_sample("aiops_anomaly_score", labels, float(event.score))
            seen.add_sample("aiops_anomaly_last_timestamp_seconds", labels, event.ts.timestamp())
        yield score
        yield seen


class _IncidentCollector(Collector):
    """``aiops_incident_open``, ``aiops_incident_alert`` and ``aiops_incidents_total`` from the
    store's live incidents."""

    def __init__(self, store: Callable[[], Any], public_url: str = "http://127.0.0.1:8000") -> None:
        self._store = store
        self._public_url = public_url

    def collect(self) -> Iterable[Metric]:
        store = self._store()
        if store is None:
            return
        opened = Metric(
            "aiops_incident_open",
            "1 while a live incident is open, per detector and series",
            "gauge",
        )
        total = CounterMetricFamily(
            "aiops_incidents", "Live incidents opened per detector", labels=["detector"]
        )
        try:
            open_incidents, counts = store.incident_metrics()
        except Exception as exc:  # a scrape must not fail because the store is busy
            log.warning("cannot read incidents for /metrics: %s", exc)
            open_incidents, counts = [], {}
        from aiops.alertmanager import incident_url

        alert = GaugeMetricFamily(
            "aiops_incident_alert",
            "1 per open live incident: what the alerting rules fire on",
            labels=["detector", "series", "severity", "incident", "url"],
        )
        for incident in open_incidents:
            labels = {"detector": incident.detector_id, **sanitize_labels(incident.labels)}
            opened.add_sample("aiops_incident_open", labels, 1.0)
            alert.add_metric(
                [
                    incident.detector_id,
                    incident.series_key or "(no labels)",
                    incident.severity,
                    str(incident.id),
                    incident_url(self._public_url, incident.id),
                ],
                1.0,
            )
        for detector, count in counts.items():
            total.add_metric([detector], float(count))
        yield opened
        yield alert
        yield total


class _HubCollector(Collector):
    """WebSocket and tailer figures, read from the hub's plain counters at scrape time."""

    def __init__(self, hub: Callable[[], Any]) -> None:
        self._hub = hub

    def collect(self) -> Iterable[Metric]:
        hub = self._hub()
        if hub is None:
            return
        yield GaugeMetricFamily(
            "aiops_api_websocket_clients", "Connected WebSocket clients", value=len(hub.subscribers)
        )
        yield CounterMetricFamily(
            "aiops_api_websocket_events_sent",
            "Events sent to WebSocket clients",
            value=hub.events_sent,
        )
        yield CounterMetricFamily(
            "aiops_api_websocket_slow_consumers",
            "WebSocket clients closed for falling behind (4008)",
            value=hub.slow_consumers,
        )
        yield CounterMetricFamily(
            "aiops_api_events_tailed",
            "Events read from the store by the tailer",
            value=hub.events_tailed,
        )
        yield GaugeMetricFamily(
            "aiops_api_websocket_fanout_seconds",
            "From the tailer publishing the latest events to their write on the slowest client's "
            "socket",
            value=hub.fanout_seconds,
        )
        yield GaugeMetricFamily(
            "aiops_api_events_last_id",
            "Id of the newest event the tailer has read",
            value=hub.last_id,
        )
        yield CounterMetricFamily(
            "aiops_api_event_tail_errors",
            "Failed polls of the store by the tailer",
            value=hub.tail_errors,
        )


class _FlowCollector(Collector):
    """The flows' metrics (``aiops_flow_*``) and backfill progress, from the store."""

    def __init__(self, store: Callable[[], Any]) -> None:
        self._store = store

    def collect(self) -> Iterable[Metric]:
        from aiops.flowstats import FLOW_METRICS

        store = self._store()
        if store is None:
            return
        try:
            rows = store.flow_metrics()
            backfills = store.backfill_window_counts()
        except Exception as exc:  # a scrape must not fail because the store is busy
            log.warning("cannot read the flows' metrics for /metrics: %s", exc)
            return
        families: dict[str, Metric] = {}
        for name, (kind, help_text) in FLOW_METRICS.items():
            families[name] = Metric(name, help_text, kind)
        for row in rows:
            family = families.get(row.name)
            if family is None:  # written by a newer version: not ours to describe
                continue
            sample = f"{row.name}_total" if family.type == "counter" else row.name
            family.add_sample(sample, {k: str(v) for k, v in row.labels.items()}, row.value)
        yield from families.values()
        windows = Metric(
            "aiops_backfill_windows", "Windows of each unfinished backfill, by status", "gauge"
        )
        for backfill_id, counts in sorted(backfills.items()):
            for status, count in counts.items():
                windows.add_sample(
                    "aiops_backfill_windows", {"backfill": backfill_id, "status": status}, count
                )
        yield windows


class ApiMetrics:
    """Every metric of one app, on its own registry."""

    def __init__(
        self,
        clients: Callable[[], Mapping[str, Any]] = dict,
        store: Callable[[], Any] = lambda: None,
        hub: Callable[[], Any] = lambda: None,
        registry: CollectorRegistry | None = None,
        public_url: str = "http://127.0.0.1:8000",
    ) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=False)
        r = self.registry
        self.requests = Counter(
            "aiops_api_requests", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "aiops_api_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        r.register(_HubCollector(hub))
        r.register(_DatasourceCollector(clients))
        r.register(_ScoreCollector(store))
        r.register(_IncidentCollector(store, public_url))
        r.register(_FlowCollector(store))

    def render(self) -> bytes:
        return generate_latest(self.registry)


def render(metrics: ApiMetrics) -> bytes:
    return metrics.render()


class MetricsMiddleware:
    """Count and time every HTTP request by method, route template and status."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in _METHODS else "other"  # bounded labels
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - started)
