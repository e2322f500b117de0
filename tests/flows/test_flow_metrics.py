"""The flows report on themselves through the store (real Prefect, real Prometheus): a tick
leaves its duration, lag, detectors by outcome, samples and collection errors, a log job its
outcome, and the API's /metrics serves them although another process ran the flows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flows.logs import analyze_logs
from flows.metrics import detect_metrics
from tasks._runtime import store

pytestmark = [pytest.mark.prefect, pytest.mark.prometheus]


def values(db) -> dict[tuple, float]:
    return {(m.name, tuple(sorted(m.labels.items()))): m.value for m in db.flow_metrics()}


async def test_a_tick_and_a_log_job_leave_their_metrics_in_the_store(aiops_env, prometheus):
    h = prometheus.history
    db = store()
    for det_id, query in (("good", "aiops_test_anomaly"), ("bad", "sum(")):
        db.create_detector(
            {
                "id": det_id,
                "kind": "zscore",
                "status": "running",
                "interval_seconds": 60,
                "datasource": {"name": "prometheus", "query": query, "step": 15, "lookback": 600},
            }
        )
    summary = await detect_metrics(now=datetime.fromtimestamp(h.end + h.step, UTC))
    assert summary["ok"] == 1 and summary["failed"] == 1
    await analyze_logs(lines=["2024-01-01T00:00:00Z ERROR boom", "2024-01-01T00:00:01Z INFO ok"])

    v = values(db)
    assert v[("aiops_flow_ticks", ())] == 1
    assert (
        v[("aiops_flow_tick_duration_seconds", ())] > 0 and ("aiops_flow_tick_lag_seconds", ()) in v
    )
    assert v[("aiops_flow_tick_detectors", (("outcome", "due"),))] == 2
    assert v[("aiops_flow_detector_runs", (("outcome", "ok"),))] == 1
    assert v[("aiops_flow_detector_runs", (("outcome", "failed"),))] == 1
    assert (
        v[("aiops_flow_samples_collected", (("datasource", "prometheus"),))]
        == summary["detectors"][1]["samples"]
        > 0
    )
    assert v[("aiops_flow_collection_errors", (("datasource", "prometheus"),))] == 1
    assert v[("aiops_flow_log_jobs", (("log_job", "ad-hoc"), ("outcome", "ok")))] == 1
