"""/metrics serves the flows' own metrics from the store (wherever the flows ran)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from aiops.flowstats import log_job_updates, tick_updates

pytestmark = pytest.mark.no_prometheus


async def test_metrics_serves_what_the_flows_stored(api):
    summary = {
        "due": 2,
        "detectors": [
            {"detector": "a", "status": "ok", "samples": 7, "dropped": 1},
            {"detector": "b", "status": "failed", "samples": 0, "dropped": 0},
        ],
    }
    updates = tick_updates(
        summary,
        datasource_of={"a": "prometheus", "b": "loki"},
        collection_failed=["b"],
        duration_seconds=2.5,
        lag_seconds=1.0,
        finished_at=1_700_000_000.0,
    )
    api.store.record_flow_metrics([*updates, *log_job_updates("errors", failed=True)])
    api.store.create_detector(
        {"id": "d", "kind": "zscore", "datasource": {"name": "prometheus", "query": "up"}}
    )
    api.store.plan_backfill(
        "bf-1", ["d"], [(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC))]
    )

    text = (await api.client.get("/metrics")).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("aiops_flow_ticks_total", ())] == 1
    assert samples[("aiops_flow_tick_duration_seconds", ())] == 2.5
    assert samples[("aiops_flow_samples_dropped_total", (("datasource", "prometheus"),))] == 1
    assert samples[("aiops_flow_collection_errors_total", (("datasource", "loki"),))] == 1
    assert (
        samples[("aiops_flow_log_jobs_total", (("log_job", "errors"), ("outcome", "failed")))] == 1
    )
    assert samples[("aiops_backfill_windows", (("backfill", "bf-1"), ("status", "pending")))] == 1
