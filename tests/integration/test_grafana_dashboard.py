"""deployments/grafana/aiops.json: valid JSON, every panel query accepted by a real Prometheus,
and every metric it names exported by the service's own /metrics."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aiops.api import create_app
from aiops.flowstats import log_job_updates, store_error_update, tick_updates
from aiops.store import series_key
from tests.api.support import make_detector, make_settings, running

pytestmark = pytest.mark.prometheus

DASHBOARD = Path(__file__).resolve().parents[2] / "deployments" / "grafana" / "aiops.json"
# Grafana's variables, as a query would see them with "All" selected.
VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__range": "1h",
    "job": ".*",
    "detector": ".*",
}
KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}


def _panels(panels: list[dict]) -> list[dict]:
    out = []
    for p in panels:
        out.append(p)
        out.extend(_panels(p.get("panels") or []))
    return out


def _queries(dashboard: dict) -> list[str]:
    exprs = [t["expr"] for p in _panels(dashboard["panels"]) for t in p.get("targets") or []]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            inner = re.fullmatch(r"label_values\((.*), *\w+\)", var["query"]["query"])
            assert inner, var
            exprs.append(inner.group(1))
    return exprs


def _substitute(expr: str) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: VARIABLES[m.group(1)], expr)


def _metric_names(expr: str) -> set[str]:
    """Identifiers in metric position: not a function call, keyword, label matcher, grouping
    label list, string, number or duration."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", "{}", text)  # label matchers
    text = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text
    )  # label lists
    text = re.sub(r"\[[^\]]*\]", "[]", text)  # ranges and subqueries
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", text):
        name, call = m.group(1), m.group(2)
        if call or name.lower() in KEYWORDS:
            continue
        names.add(name)
    return names


async def _exported_names(tmp_path: Path, prometheus_url: str) -> set[str]:
    """Sample names of a real app's /metrics after one request and one stored score."""
    from aiops.store import Store

    store = Store.open(f"sqlite:///{tmp_path / 'aiops.db'}")
    try:
        make_detector(store, "det-a")
        labels = {"service": "checkout"}
        at = datetime(2024, 1, 1, tzinfo=UTC)
        store.commit_detection(
            "det-a",
            latest=[
                {
                    "series_key": series_key(labels),
                    "labels": labels,
                    "ts": at,
                    "value": 1.0,
                    "score": 2.0,
                }
            ],
            incidents=[
                {
                    "series_key": series_key(labels),
                    "labels": labels,
                    "opened_at": at,
                    "opened": True,
                    "last_anomalous_at": at,
                    "resolved_at": None,
                    "points": 1,
                    "peak": {"ts": at, "score": 2.0, "value": 1.0},
                }
            ],
        )
        # the flows' own metrics, as a tick and a log job leave them in the store
        summary = {
            "due": 1,
            "detectors": [{"detector": "det-a", "status": "ok", "samples": 10, "dropped": 0}],
        }
        store.record_flow_metrics(
            [
                *tick_updates(
                    summary,
                    datasource_of={"det-a": "prometheus"},
                    collection_failed=["det-a"],
                    duration_seconds=1.5,
                    lag_seconds=0.2,
                    finished_at=at.timestamp(),
                ),
                *log_job_updates("errors", failed=False),
                store_error_update("detect-metrics"),
            ]
        )
        settings = make_settings(
            prometheus_url, f"sqlite:///{tmp_path / 'aiops.db'}", token=None, loki=False
        )
        async with httpx.AsyncClient(timeout=30) as http:
            app = create_app(settings, store=store, http_client=http)
            async with running(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://api.test"
                ) as client:
                    assert (
                        await client.post("/api/datasources/prometheus/query", json={"query": "up"})
                    ).status_code == 200
                    text = (await client.get("/metrics")).text
    finally:
        store.close()
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(s.name for s in family.samples)
    return names


def test_the_dashboard_is_valid_json_with_unique_panel_ids():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    panels = _panels(dashboard["panels"])
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    graphs = [p for p in panels if p["type"] != "row"]
    assert graphs and all(p.get("targets") for p in graphs)
    assert all(t["datasource"]["uid"] == "${datasource}" for p in graphs for t in p["targets"])


async def test_every_dashboard_query_runs_on_prometheus_and_names_only_exported_metrics(
    prometheus, tmp_path
):
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = _queries(dashboard)
    assert len(exprs) >= 20
    async with httpx.AsyncClient(timeout=30) as http:
        for expr in exprs:
            r = await http.get(
                f"{prometheus.url}/api/v1/query", params={"query": _substitute(expr)}
            )
            assert r.status_code == 200 and r.json()["status"] == "success", (expr, r.text)
    exported = await _exported_names(tmp_path, prometheus.url)
    used = set().union(*(_metric_names(e) for e in exprs))
    assert "aiops_anomaly_score" in used and "aiops_anomaly_last_timestamp_seconds" in used
    assert "aiops_incident_open" in used and "aiops_incidents_total" in used
    assert {
        "aiops_flow_tick_duration_seconds",
        "aiops_flow_tick_lag_seconds",
        "aiops_flow_detector_runs_total",
        "aiops_flow_samples_dropped_total",
        "aiops_flow_collection_errors_total",
        "aiops_flow_log_jobs_total",
        "aiops_flow_store_errors_total",
        "aiops_backfill_windows",
    } <= used
    assert used <= exported, f"not exported by /metrics: {sorted(used - exported)}"


def test_the_metric_name_extraction_sees_metrics_only():
    expr = (
        "histogram_quantile(0.95, sum by (route, le) "
        '(rate(aiops_x_bucket{job=~"$job", a="b c"}[5m]))) '
        "/ on (route) group_left count_over_time((aiops_y > 1)[1h:1m]) or vector(0)"
    )
    assert _metric_names(expr) == {"aiops_x_bucket", "aiops_y"}
