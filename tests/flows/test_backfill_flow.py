"""The backfill flow: idempotent, resumable, and finding what live operation finds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aiops.errors import InvalidInput, NotFound
from flows.backfill import backfill, backfill_id_for, plan_windows
from flows.metrics import detect_metrics
from tasks._runtime import store
from tests.support.prometheus import SPIKE_INDEX

pytestmark = [pytest.mark.prefect, pytest.mark.prometheus]


def at(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def make_detector(db, id="bf", kind="zscore", params=None):
    return db.create_detector(
        {
            "id": id,
            "name": id,
            "kind": kind,
            "params": params or {"window": 40},
            "status": "paused",
            "datasource": {
                "query": 'aiops_test_anomaly{instance="a"}',
                "step": 15,
                "lookback": 6 * 3600,
            },
        }
    )


def test_windows_cover_the_range_exactly():
    t = datetime(2024, 1, 1, tzinfo=UTC)
    assert plan_windows(t, t + timedelta(hours=2, minutes=30), 3600) == [
        (t, t + timedelta(hours=1)),
        (t + timedelta(hours=1), t + timedelta(hours=2)),
        (t + timedelta(hours=2), t + timedelta(hours=2, minutes=30)),
    ]


async def test_a_backfill_finds_the_known_anomaly_once_and_a_rerun_adds_nothing(
    aiops_env, prometheus
):
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


# --------------------------------------------------------------------------- marking and alerts


async def test_backfilled_anomalies_are_marked_and_not_alerted_unless_asked(
    aiops_env, prometheus, prefect_events
):
    h = prometheus.history
    db = store()
    make_detector(db)
    result = await backfill(["bf"], at(h.start), at(h.end + h.step), window="2h")
    [found] = db.list_anomalies(detector="bf")
    assert found.backfill_id == result["backfill_id"]
    assert db.list_anomalies(detector="bf", source="live") == []
    assert [
        a.id for a in db.list_anomalies(source="backfill", backfill_id=result["backfill_id"])
    ] == [found.id]

    make_detector(db, "bf2")
    await backfill(["bf2"], at(h.start), at(h.end + h.step), window="2h", emit_events=True)
    emitted = [e for e in prefect_events() if e.event.startswith("aiops.")]
    incidents = db.list_incidents(detector="bf2")
    assert {e.payload["incident_id"] for e in emitted} == {
        i.id for i in incidents
    }  # incidents, not points
    assert [e.event for e in emitted if e.payload["incident_id"] == incidents[0].id][
        0
    ] == "aiops.incident.opened"
    assert {e.payload["detector"] for e in emitted} == {
        "bf2"
    }  # bf's incidents are history, not alerts
    assert {e.payload["backfill_id"] for e in emitted} == {
        db.list_anomalies(detector="bf2")[0].backfill_id
    }


async def test_an_incident_across_windows_is_one_incident(aiops_env, prometheus):
    h = prometheus.history
    db = store()
    make_detector(
        db, kind="threshold", params={"upper": 12.5}
    )  # only the spike (about 15) is above it
    db.update_detector("bf", resolve_after=30)  # the spike's incident spans three 5-minute windows
    start, end = at(h.timestamp(SPIKE_INDEX - 240)), at(h.timestamp(SPIKE_INDEX + 120))
    result = await backfill(["bf"], start, end, window="5m")
    assert result["incidents_opened"] == result["incidents_resolved"] == 1
    (found,) = db.list_incidents(detector="bf", source="backfill")
    spike = at(h.timestamp(SPIKE_INDEX))
    assert found.opened_at == spike and found.resolved_at == at(h.timestamp(SPIKE_INDEX + 31))
    assert found.backfill_id == result["backfill_id"] and found.points == 1
    assert db.load_incident_states("bf") == {}  # the live grouping is untouched
    # resumed (the same request again): nothing new
    again = await backfill(["bf"], start, end, window="5m")
    assert again["incidents_opened"] == 0 and db.list_incidents(detector="bf") == [found]


# ------------------------------------------------------------------- training prefix, order, memory


async def test_a_training_prefix_fits_without_scoring_and_starts_a_window_at_its_end(
    aiops_env, prometheus
):
    h = prometheus.history
    db = store()
    make_detector(db, "early")
    make_detector(db, "late")
    start, end = at(h.start), at(h.end + h.step)
    spike = at(h.timestamp(SPIKE_INDEX))  # 4h10m after the start
    trained_past_spike = await backfill(["early"], start, end, window="1h", train="4h30m")
    trained_before = await backfill(["late"], start, end, window="1h", train="90m")
    assert trained_past_spike["anomalies"] == 0 and db.list_anomalies(detector="early") == []
    assert [a.ts for a in db.list_anomalies(detector="late")] == [spike]
    # the prefix ends a window: 1h, 30m, then hours from the cut (the last one 15 s)
    assert (
        db.next_pending_windows(trained_before["backfill_id"]) == []
        and trained_before["progress"]["total"] == 7
    )


async def test_windows_run_oldest_first_one_at_a_time(aiops_env, prometheus):
    h = prometheus.history
    db = store()
    make_detector(db)
    start, end = at(h.start), at(h.end + h.step)
    seen = []
    for _ in range(3):
        step = await backfill(["bf"], start, end, window="1h", max_windows=1)
        seen.append(step["detectors"][0]["first_window"])
    assert seen == [(start + timedelta(hours=i)).isoformat() for i in range(3)]


async def test_memory_follows_the_buffer_not_the_range(aiops_env, prometheus, monkeypatch):
    """Windows are read in pieces that fit the buffer, whatever the range: a long range at a
    small buffer finds exactly what one piece per window finds."""
    import flows.backfill as module

    h = prometheus.history
    db = store()
    make_detector(db, "whole")
    make_detector(db, "pieces")
    start, end = at(h.start), at(h.end + h.step)
    whole = await backfill(["whole"], start, end, window="6h")
    monkeypatch.setattr(module, "BACKFILL_CAPACITY", 100)
    monkeypatch.setenv("AIOPS_BUFFER_SIZE", "100")
    short = await backfill(
        ["pieces"], start, start + timedelta(hours=1), window="6h", backfill_id="short"
    )
    pieces = await backfill(["pieces"], start, end, window="6h", backfill_id="long")
    # a 10-step probe, then the rest of the 6h window (1,440 steps) in one piece
    assert whole["detectors"][0]["max_piece_samples"] == 1440 - 10
    assert (
        short["detectors"][0]["max_piece_samples"]
        == pieces["detectors"][0]["max_piece_samples"]
        == 100
    )
    assert pieces["detectors"][0]["samples"] == h.points
    assert [a.ts for a in db.list_anomalies(detector="pieces")] == [
        a.ts for a in db.list_anomalies(detector="whole")
    ]


# --------------------------------------------------------------------------- a real kill


def test_a_backfill_killed_mid_run_resumes_without_redoing_or_duplicating(aiops_env, prometheus):
    """SIGKILL the flow in another process after a few windows; the same request run again
    does only the windows left and ends with exactly what an uninterrupted run finds."""
    import asyncio
    import os
    import signal
    import subprocess
    import sys

    from prefect.settings import PREFECT_API_URL

    h = prometheus.history
    db = store()
    make_detector(db)
    start, end = at(h.start), at(h.end + h.step)
    script = (
        "import asyncio, datetime as d\n"
        "from flows.backfill import backfill\n"
        f"s = d.datetime.fromtimestamp({h.start}, d.UTC); e = "
        f"d.datetime.fromtimestamp({h.end + h.step}, d.UTC)\n"
        "asyncio.run(backfill(['bf'], s, e, window='5m'))\n"
    )
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=os.getcwd())
    bf_id = backfill_id_for(["bf"], start, end, "5m")
    try:
        for _ in range(1200):  # at most ~4 minutes: each poll pauses in proc.wait
            try:
                proc.wait(timeout=0.2)
                break  # it ended by itself: the assertion below says so
            except subprocess.TimeoutExpired:
                pass
            try:
                if db.backfill_progress(bf_id).done >= 3:
                    break
            except NotFound:  # not planned yet
                continue
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    killed_at = db.backfill_progress(bf_id)
    assert 3 <= killed_at.done < killed_at.total, "the run was not killed mid-way"

    resumed = asyncio.run(backfill(["bf"], start, end, window="5m"))
    assert resumed["backfill_id"] == bf_id
    assert resumed["detectors"][0]["windows"] == killed_at.total - killed_at.done
    assert resumed["progress"]["done"] == resumed["progress"]["total"] == killed_at.total
    assert [a.ts for a in db.list_anomalies(detector="bf")] == [at(h.timestamp(SPIKE_INDEX))]


# --------------------------------------------------------------------------- log jobs


def write_log_job(tmp_path, monkeypatch):
    """Three hours of a worker's logs; a new failure appears in the third hour only."""
    t0 = datetime(2024, 3, 4, 12, 0, tzinfo=UTC)
    lines = []
    for i in range(36):  # one line every 5 minutes
        ts = (t0 + timedelta(minutes=5 * i)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        lines.append(
            f'ts={ts} level=info msg="task succeeded" task=send_email task_id={1000 + i} '
            f"duration=0.{i % 9 + 1}s"
        )
        if i >= 24:
            lines.append(
                f'ts={ts} level=error msg="connection refused to db-{i % 3}:5432" task=send_email'
            )
    path = tmp_path / "worker.log"
    path.write_text("\n".join(lines) + "\n")
    config = tmp_path / "aiops.yaml"
    config.write_text(f"log_jobs:\n  - name: worker\n    path: {path}\n    every: 1h\n")
    monkeypatch.setenv("AIOPS_CONFIG_FILE", str(config))
    return t0


async def test_a_log_backfill_writes_one_report_per_window_once(aiops_env, monkeypatch):
    from flows.backfill import log_source

    t0 = write_log_job(aiops_env, monkeypatch)
    db = store()
    first = await backfill(
        log_jobs=["worker"], start=t0, end=t0 + timedelta(hours=3), log_window="1h"
    )
    source = log_source(first["backfill_id"], "worker")
    reports = sorted(db.list_log_reports(source=source), key=lambda r: r.window_start)
    assert [
        (r.window_start, r.summary["total_logs"], r.summary["error_count"]) for r in reports
    ] == [
        (t0, 12, 0),
        (t0 + timedelta(hours=1), 12, 0),
        (t0 + timedelta(hours=2), 24, 12),
    ]
    assert (
        first["logs"][0]["windows"] == 3
        and first["progress"]["done"] == first["progress"]["total"] == 3
    )
    changes = db.events_after(0, types=None)
    assert changes and {e.backfill_id for e in changes} == {first["backfill_id"]}
    assert all(e.ts == t0 + timedelta(hours=3) for e in changes)  # found in the third window

    again = await backfill(
        log_jobs=["worker"], start=t0, end=t0 + timedelta(hours=3), log_window="1h"
    )
    assert again["logs"][0]["windows"] == 0 and len(db.list_log_reports(source=source)) == 3
    assert len(db.events_after(0)) == len(changes)


async def test_a_log_backfill_names_an_unknown_job(aiops_env, monkeypatch):
    t0 = write_log_job(aiops_env, monkeypatch)
    with pytest.raises(InvalidInput, match="no log job named 'nope'"):
        await backfill(log_jobs=["nope"], start=t0, end=t0 + timedelta(hours=1))


async def test_a_failing_detector_stops_at_its_window_and_the_others_finish(aiops_env, prometheus):
    h = prometheus.history
    db = store()
    make_detector(db, "good")
    db.create_detector(
        {
            "id": "broken",
            "name": "broken",
            "kind": "zscore",
            "status": "paused",
            "datasource": {"query": "rate(aiops_test_anomaly[", "step": 15, "lookback": 3600},
        }
    )
    result = await backfill(["good", "broken"], at(h.start), at(h.end + h.step), window="2h")
    by_id = {r["detector"]: r for r in result["detectors"]}
    assert by_id["good"]["error"] is None and by_id["good"]["windows"] == 4
    assert by_id["broken"]["windows"] == 0 and "parse error" in by_id["broken"]["error"]
    left = db.next_pending_windows(result["backfill_id"], detector_id="broken")
    assert [w.status for w in left] == [
        "failed",
        "pending",
        "pending",
        "pending",
    ]  # retried by the next run
    assert left[0].error == by_id["broken"]["error"] and left[0].attempts == 1
    assert [a.ts for a in db.list_anomalies(detector="good")] == [at(h.timestamp(SPIKE_INDEX))]
