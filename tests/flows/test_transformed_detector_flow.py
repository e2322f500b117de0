"""A detector with transform steps through the real flows (real Prefect, real Prometheus):
live ticks of any size and one backfill window store the same anomalies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aiops.pipeline import collection_window
from flows.backfill import backfill
from flows.metrics import detect_metrics
from tasks._runtime import store

pytestmark = [pytest.mark.prefect, pytest.mark.prometheus]

STEPS = [
    {"op": "resample", "step": "1m", "how": "max"},
    {"op": "rolling", "window": "2m", "how": "avg"},
    {"op": "aggregate", "how": "max", "by": ["instance"]},
]


def at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def make(db, detector_id: str) -> None:
    db.create_detector(
        {
            "id": detector_id,
            "kind": "zscore",
            "params": {"window": 20, "calibration": "none"},
            "status": "running",
            "interval_seconds": 60,
            "transforms": STEPS,
            "datasource": {
                "name": "prometheus",
                "query": "aiops_test_anomaly",
                "step": 15,
                "lookback": 6 * 3600,
            },
        }
    )


def found(db, detector_id: str) -> list[tuple]:
    return sorted(
        (a.ts, a.series_key, round(a.score, 6)) for a in db.list_anomalies(detector=detector_id)
    )


async def test_ticks_and_a_backfill_of_a_transformed_detector_find_the_same(aiops_env, prometheus):
    h = prometheus.history
    db = store()
    make(db, "ticks")
    make(db, "bf")
    first = at(h.start) + timedelta(hours=4)  # the spike is 10 minutes later
    # the first tick reads its lookback up to `first`; then ticks of 7 steps, cut inside buckets
    for i in range(14):
        summary = await detect_metrics(
            detector_ids=["ticks"], now=first + timedelta(seconds=7 * h.step * i)
        )
        assert summary["failed"] == 0, summary
    window = collection_window(
        step_seconds=h.step, lookback_seconds=6 * 3600, checkpoint=None, now=first
    )
    last = db.get_checkpoint("ticks")
    await backfill(["bf"], window.start, last + timedelta(seconds=h.step), window="2h")
    live, replayed = found(db, "ticks"), found(db, "bf")
    assert live and live == replayed
