"""The backfill flow: idempotent, resumable, and finding what live operation finds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aiops.errors import InvalidInput, NotFound
from flows.backfill import backfill, plan_windows
from flows.metrics import detect_metrics
from tasks._runtime import store
from tests.support.prometheus import SPIKE_INDEX

pytestmark = [pytest.mark.prefect, pytest.mark.prometheus]


def at(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def make_detector(db, id="bf"):
    return db.create_detector(
        {
            "id": id, "name": id, "kind": "zscore", "params": {"window": 40}, "status": "paused",
            "datasource": {"query": 'aiops_test_anomaly{instance="a"}', "step": 15, "lookback": 6 * 3600},
        }
    )


def test_windows_cover_the_range_exactly():
    t = datetime(2024, 1, 1, tzinfo=UTC)
    assert plan_windows(t, t + timedelta(hours=2, minutes=30), 3600) == [
        (t, t + timedelta(hours=1)), (t + timedelta(hours=1), t + timedelta(hours=2)),
        (t + timedelta(hours=2), t + timedelta(hours=2, minutes=30)),
    ]


async def test_a_backfill_finds_the_known_anomaly_once_and_a_rerun_adds_nothing(aiops_env, prometheus):
    h = prometheus.history
    db = store()
    make_detector(db)
    start, end = at(h.start), at(h.end + h.step)

    first = await backfill(["bf"], start, end, window="1h")

    spike = at(h.timestamp(SPIKE_INDEX))
    assert [a.ts for a in db.list_anomalies(detector="bf")] == [spike]
    assert first["anomalies"] == 1
    assert first["progress"]["done"] == first["progress"]["total"] == 7
    assert db.get_checkpoint("bf") is None and db.load_states("bf") == {}  # live state untouched

    again = await backfill(["bf"], start, end, window="1h")
    assert again["backfill_id"] == first["backfill_id"] and again["anomalies"] == 0
    assert len(db.list_anomalies(detector="bf")) == 1


async def test_an_interrupted_backfill_resumes_where_it_stopped(aiops_env, prometheus):
    h = prometheus.history
    db = store()
    make_detector(db)
    start, end = at(h.start), at(h.end + h.step)

    partial = await backfill(["bf"], start, end, window="1h", max_windows=3)
    assert partial["progress"]["done"] == 3 and partial["progress"]["pending"] == 4
    assert db.list_anomalies(detector="bf") == []  # the spike lies in window 5

    rest = await backfill(["bf"], start, end, window="1h")
    assert rest["progress"]["done"] == 7 and rest["detectors"][0]["windows"] == 4
    assert [a.ts for a in db.list_anomalies(detector="bf")] == [at(h.timestamp(SPIKE_INDEX))]


async def test_a_backfill_after_live_detection_stores_no_duplicate(aiops_env, prometheus):
    h = prometheus.history
    db = store()
    make_detector(db)
    db.update_detector("bf", status="running")
    await detect_metrics(now=at(h.end + h.step))
    live = db.list_anomalies(detector="bf")
    assert len(live) == 1
    result = await backfill(["bf"], at(h.start), at(h.end + h.step), window="2h")
    assert result["anomalies"] == 0 and db.list_anomalies(detector="bf") == live


async def test_bad_backfill_requests_are_refused(aiops_env, prometheus):
    db = store()
    make_detector(db)
    now = datetime.now(UTC)
    with pytest.raises(InvalidInput):
        await backfill(["bf"], now - timedelta(hours=1), now + timedelta(hours=1))
    with pytest.raises(InvalidInput):
        await backfill(["bf"], now, now - timedelta(hours=1))
    with pytest.raises(NotFound):
        await backfill(["nope"], now - timedelta(hours=2), now - timedelta(hours=1))
