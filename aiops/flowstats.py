"""What the flows report about themselves, as metrics the API's ``/metrics`` serves.

A flow run (in a worker, on any machine) turns its outcome into :class:`MetricUpdate` values
(:func:`tick_updates`, :func:`log_job_updates`, :func:`store_error_update`) and adds them to
the store (``Store.record_flow_metrics``: a counter is added to in the database, so every
worker's runs add up; a gauge is set, the newest write wins). The API reads them back at
scrape time (:data:`FLOW_METRICS` gives each its type and help). The store is the source of
truth: nothing depends on which process ran the flow or on the API's own lifetime.

No Prefect here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["MetricUpdate", "FLOW_METRICS", "tick_updates", "log_job_updates", "store_error_update"]

Kind = Literal["counter", "gauge"]

#: name -> (type, help). Counters are exported with the ``_total`` suffix Prometheus adds.
FLOW_METRICS: dict[str, tuple[Kind, str]] = {
    "aiops_flow_ticks": ("counter", "detect-metrics runs finished"),
    "aiops_flow_tick_seconds": (
        "counter",
        "Seconds spent in detect-metrics runs (rate / ticks rate = mean duration)",
    ),
    "aiops_flow_tick_duration_seconds": ("gauge", "Duration of the latest detect-metrics run"),
    "aiops_flow_tick_lag_seconds": (
        "gauge",
        "How late the latest detect-metrics run started after its scheduled time",
    ),
    "aiops_flow_tick_last_finished_timestamp_seconds": (
        "gauge",
        "When the latest detect-metrics run finished (Unix seconds)",
    ),
    "aiops_flow_tick_detectors": (
        "gauge",
        "Detectors of the latest detect-metrics run, by outcome (due, ok, failed, skipped, "
        "taken_over, elsewhere)",
    ),
    "aiops_flow_detector_runs": (
        "counter",
        "Detector runs of detect-metrics, by outcome (ok, failed, skipped, taken_over)",
    ),
    "aiops_flow_samples_collected": (
        "counter",
        "Samples collected by detect-metrics, per datasource",
    ),
    "aiops_flow_samples_dropped": (
        "counter",
        "Samples dropped by the bounded buffer, per datasource",
    ),
    "aiops_flow_collection_errors": (
        "counter",
        "Detectors whose collection failed, per datasource",
    ),
    "aiops_flow_log_jobs": (
        "counter",
        "analyze-logs runs, by log_job (a job name, triage or ad-hoc) and outcome (ok, failed)",
    ),
    "aiops_flow_store_errors": ("counter", "Store operations of the flows that failed, by flow"),
}

TICK_OUTCOMES = ("ok", "failed", "skipped", "taken_over")


@dataclass(frozen=True)
class MetricUpdate:
    """Add ``value`` to a counter, or set a gauge to it."""

    name: str
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> Kind:
        return FLOW_METRICS[self.name][0]


def tick_updates(
    summary: Mapping[str, Any],
    *,
    datasource_of: Mapping[str, str],
    collection_failed: Iterable[str],
    duration_seconds: float,
    lag_seconds: float | None,
    finished_at: float,
) -> list[MetricUpdate]:
    """A detect-metrics run's summary (``flows.metrics``) as metric updates. ``datasource_of``:
    detector id -> datasource name; ``collection_failed``: the detectors whose collection
    failed (not their scoring)."""
    rows = summary.get("detectors", [])
    out = [
        MetricUpdate("aiops_flow_ticks", 1),
        MetricUpdate("aiops_flow_tick_seconds", duration_seconds),
        MetricUpdate("aiops_flow_tick_duration_seconds", duration_seconds),
        MetricUpdate("aiops_flow_tick_last_finished_timestamp_seconds", finished_at),
    ]
    if lag_seconds is not None:
        out.append(MetricUpdate("aiops_flow_tick_lag_seconds", max(0.0, lag_seconds)))
    counts = {"due": summary.get("due", 0), "elsewhere": len(summary.get("elsewhere", {}))}
    for outcome in TICK_OUTCOMES:
        counts[outcome] = sum(1 for r in rows if r["status"].replace("-", "_") == outcome)
    for outcome, n in counts.items():
        out.append(MetricUpdate("aiops_flow_tick_detectors", n, {"outcome": outcome}))
        if outcome in TICK_OUTCOMES and n:
            out.append(MetricUpdate("aiops_flow_detector_runs", n, {"outcome": outcome}))
    samples: dict[str, float] = {}
    dropped: dict[str, float] = {}
    for r in rows:
        ds = datasource_of.get(r["detector"])
        if ds is None:
            continue
        samples[ds] = samples.get(ds, 0) + r.get("samples", 0)
        dropped[ds] = dropped.get(ds, 0) + r.get("dropped", 0)
    for ds in sorted(samples):
        out.append(MetricUpdate("aiops_flow_samples_collected", samples[ds], {"datasource": ds}))
        out.append(MetricUpdate("aiops_flow_samples_dropped", dropped[ds], {"datasource": ds}))
    errors: dict[str, int] = {}
    for det in collection_failed:
        ds = datasource_of.get(det)
        if ds is not None:
            errors[ds] = errors.get(ds, 0) + 1
    for ds, n in sorted(errors.items()):
        out.append(MetricUpdate("aiops_flow_collection_errors", n, {"datasource": ds}))
    store_errors = summary.get("store_errors", 0)
    if store_errors:
        out.append(store_error_update("detect-metrics", store_errors))
    return out


def log_job_updates(job: str, *, failed: bool) -> list[MetricUpdate]:
    """One analyze-logs run of ``job`` (a configured job's name, or the source kind)."""
    return [
        MetricUpdate(
            "aiops_flow_log_jobs", 1, {"log_job": job, "outcome": "failed" if failed else "ok"}
        )
    ]


def store_error_update(flow: str, count: float = 1) -> MetricUpdate:
    return MetricUpdate("aiops_flow_store_errors", count, {"flow": flow})
