"""A detector fed by a LogQL metric query runs like a PromQL one: the tick collects it from the
Loki stand-in (real HTTP) through the same range interface, scores it and finds the burst; the
backfill of the same window finds the same point."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flows.backfill import backfill
from flows.metrics import detect_metrics
from tasks._runtime import store
from tests.support import lokidata

pytestmark = [pytest.mark.prefect]

PARAMS = {"window": 30, "calibration": "none"}


def at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def make_detector(db, detector_id: str) -> None:
    db.create_detector(
        {
            "id": detector_id,
            "kind": "zscore",
            "params": PARAMS,
            "status": "running",
            "interval_seconds": 60,
            "datasource": {
                "name": "loki",
                "query": lokidata.QUERY,
                "step": 60,
                "lookback": lokidata.MINUTES * 60,
            },
        }
    )


async def test_a_loki_detector_is_collected_scored_and_backfilled(fake_loki):
    lokidata.load(fake_loki)
    db = store()
    make_detector(db, "checkout-errors")
    now = at(lokidata.START + lokidata.MINUTES * 60)

    summary = await detect_metrics(now=now)

    (row,) = summary["detectors"]
    assert row["status"] == "ok", row
    assert row["samples"] > 100 and row["series"] == 1
    live = db.list_anomalies(detector="checkout-errors")
    assert at(lokidata.burst_at()) in [a.ts for a in live]
    assert db.collector_status("checkout-errors").state == "ok"

    make_detector(db, "checkout-errors-bf")
    first = min(a.ts for a in live)
    result = await backfill(["checkout-errors-bf"], at(lokidata.START), now, window="1h")
    assert result["progress"]["failed"] == 0 and result["progress"]["done"] == 3, result
    replayed = db.list_anomalies(detector="checkout-errors-bf")
    assert at(lokidata.burst_at()) in [a.ts for a in replayed]
    assert first in [a.ts for a in replayed]
