"""The detect-metrics flow end to end: real Prefect server, real Prometheus, real store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from flows.metrics import detect_metrics
from tasks._runtime import store
from tests.support.prometheus import SPIKE_INDEX, free_port

pytestmark = [pytest.mark.prefect, pytest.mark.prometheus]

A_LABELS = {"__name__": "aiops_test_anomaly", "instance": "a"}


def at(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def make_detector(
    db,
    id="latency",
    *,
    status="running",
    query="aiops_test_anomaly",
    name="prometheus",
    lookback=6 * 3600,
    kind="zscore",
    params=None,
):
    return db.create_detector(
        {
            "id": id,
            "name": f"{id} detector",
            "kind": kind,
            "params": params or {"window": 40},
            "status": status,
            "interval_seconds": 60,
            "datasource": {"name": name, "query": query, "step": 15, "lookback": lookback},
        }
    )


async def test_tick_stores_the_known_anomaly_with_provenance_then_emits_its_incident(
    aiops_env, prometheus, prefect_events
):
    h = prometheus.history
    db = store()
    make_detector(db)
    now = at(h.end + h.step)  # the window ends exactly at the last loaded sample

    summary = await detect_metrics(now=now)

    assert summary["ok"] == 1 and summary["failed"] == 0
    anomalies = db.list_anomalies(detector="latency")
    assert [(a.ts, a.labels) for a in anomalies] == [(at(h.timestamp(SPIKE_INDEX)), A_LABELS)]
    a = anomalies[0]
    assert a.value == pytest.approx(15.0 + 0.1 * ((SPIKE_INDEX * 7919) % 13) / 13)
    assert a.score > 1 and a.lower <= a.expected <= a.upper < a.value
    assert a.model_kind == "zscore" and a.params_hash == db.get_detector("latency").spec_hash
    assert a.flow_run_id and a.severity in ("warning", "critical")
    assert db.get_checkpoint("latency") == at(h.end)
    status = db.collector_status("latency")
    assert status.state == "ok" and status.series == 2 and status.dropped == 0
    latest = {s.labels["instance"]: s for s in db.latest_scores()}
    assert set(latest) == {"a", "b"} and all(s.ts == at(h.end) for s in latest.values())
    assert sorted(db.load_states("latency")) == [
        '__name__="aiops_test_anomaly",instance="a"',
        '__name__="aiops_test_anomaly",instance="b"',
    ]

    # one incident: opened at the spike, resolved resolve_after + 1 steps later
    (incident,) = [i for i in db.list_incidents(detector="latency") if i.labels == A_LABELS]
    resolve_after = db.get_detector("latency").resolve_after
    assert incident.opened_at == a.ts and incident.points == 1 and incident.peak_value == a.value
    assert incident.resolved_at == a.ts + timedelta(seconds=h.step * (resolve_after + 1))
    assert incident.source == "live" and incident.flow_run_id == a.flow_run_id
    assert summary["incidents_opened"] == summary["incidents_resolved"] == len(db.list_incidents())

    emitted = [
        e
        for e in prefect_events()
        if e.event.startswith("aiops.") and e.payload.get("labels") == A_LABELS
    ]
    assert [e.event for e in emitted] == [
        "aiops.incident.opened",
        "aiops.incident.resolved",
    ]  # no per-point events
    opened = emitted[0]
    assert opened.resource.id == "aiops.detector.latency"
    assert opened.resource["aiops.series"] == a.series_key
    (series,) = [r for r in opened.related if r.role == "series"]
    assert series.id.startswith("aiops.series.latency.") and series["aiops.label.instance"] == "a"
    assert series.name == a.series_key
    assert opened.payload["incident_id"] == incident.id and opened.payload["labels"] == A_LABELS
    assert emitted[1].payload["resolved_at"] == incident.resolved_at.isoformat()


async def test_an_incident_continues_across_ticks_and_a_restart(
    aiops_env, prometheus, prefect_events
):
    from tasks._runtime import close_stores

    h = prometheus.history
    db = store()
    # a static bound: only the spike on instance "a" (about 15) is above it
    make_detector(db, lookback=3600, kind="threshold", params={"upper": 12.5})
    db.update_detector("latency", resolve_after=3)
    # the first tick ends two steps after the spike: the incident is open
    first = await detect_metrics(now=at(h.timestamp(SPIKE_INDEX + 2) + h.step))
    assert first["incidents_opened"] == 1 and first["incidents_resolved"] == 0
    (opened,) = db.list_incidents(state="open")
    close_stores()  # a restart: the next tick reads everything back from the store
    db = store()
    second = await detect_metrics(now=at(h.end + h.step))
    assert second["incidents_opened"] == 0 and second["incidents_resolved"] == 1
    (incident,) = db.list_incidents(detector="latency")
    assert incident.id == opened.id and incident.resolved_at == at(h.timestamp(SPIKE_INDEX + 4))
    types = [e.type for e in db.events_after(0, types=["incident.opened", "incident.resolved"])]
    assert types == ["incident.opened", "incident.resolved"]
    assert [e.event for e in prefect_events() if e.event.startswith("aiops.incident")] == [
        "aiops.incident.opened",
        "aiops.incident.resolved",
    ]


async def test_a_second_tick_over_the_same_window_adds_nothing(aiops_env, prometheus):
    h = prometheus.history
    db = store()
    make_detector(db)
    now = at(h.end + h.step)
    await detect_metrics(now=now)
    before, incidents = db.max_event_id(), db.list_incidents(detector="latency")
    assert incidents
    again = await detect_metrics(now=now + timedelta(seconds=61))
    assert db.max_event_id() == before
    row = again["detectors"][0] if again["detectors"] else None
    assert row is None or row["anomalies"] == row["incidents_opened"] == 0
    assert db.list_incidents(detector="latency") == incidents


async def test_downtime_is_caught_up_from_the_checkpoint_without_a_gap(aiops_env, prometheus):
    h = prometheus.history
    db = store()
    make_detector(db, lookback=3600)
    # first tick: only the hour before index 900 (the spike at 1000 is still in the future)
    first_now = at(h.timestamp(900) + h.step)
    await detect_metrics(now=first_now)
    assert db.list_anomalies(detector="latency") == []
    assert db.get_checkpoint("latency") == at(h.timestamp(900))
    # "downtime", then a tick at the end of history: everything since the checkpoint is scored
    await detect_metrics(now=at(h.end + h.step))
    assert [a.ts for a in db.list_anomalies(detector="latency")] == [at(h.timestamp(SPIKE_INDEX))]
    assert db.get_checkpoint("latency") == at(h.end)


async def test_training_detectors_fit_and_emit_nothing(aiops_env, prometheus):
    h = prometheus.history
    db = store()
    make_detector(db, status="training")
    summary = await detect_metrics(now=at(h.end + h.step))
    assert summary["ok"] == 1 and summary["anomalies"] == 0
    assert db.list_anomalies(detector="latency") == []
    states = db.load_states("latency")
    assert len(states) == 2 and all(s.trained_at is not None for s in states.values())


async def test_a_dead_datasource_fails_its_detector_only_and_the_next_tick_recovers(
    aiops_env, prometheus, monkeypatch, tmp_path
):
    h = prometheus.history
    dead = f"http://127.0.0.1:{free_port()}"
    config = tmp_path / "aiops.yaml"
    config.write_text(f"datasources:\n  flaky:\n    type: prometheus\n    urls: [{dead}]\n")
    monkeypatch.setenv("AIOPS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AIOPS_RETRY_ATTEMPTS", "2")
    db = store()
    make_detector(db, "healthy")
    make_detector(db, "broken", name="flaky")
    make_detector(db, "bad-query", query="sum(aiops_test_anomaly")
    now = at(h.end + h.step)

    summary = await detect_metrics(now=now)

    by_id = {r["detector"]: r for r in summary["detectors"]}
    assert by_id["healthy"]["status"] == "ok" and by_id["healthy"]["anomalies"] == 1
    assert by_id["broken"]["status"] == "failed" and dead in by_id["broken"]["error"]
    assert by_id["bad-query"]["status"] == "failed" and "parse error" in by_id["bad-query"]["error"]
    broken = db.collector_status("broken")
    assert (
        broken.state == "failed" and broken.consecutive_failures == 1 and dead in broken.last_error
    )
    assert db.get_checkpoint("broken") is None

    # the datasource comes back (now pointing at the real server): the next tick recovers
    config.write_text(
        f"datasources:\n  flaky:\n    type: prometheus\n    urls: [{prometheus.url}]\n"
    )
    await detect_metrics(detector_ids=["broken"], now=now + timedelta(seconds=61))
    recovered = db.collector_status("broken")
    assert recovered.state == "ok" and recovered.consecutive_failures == 0
    assert [a.ts for a in db.list_anomalies(detector="broken")] == [at(h.timestamp(SPIKE_INDEX))]


async def test_detectors_whose_datasource_is_unknown_are_skipped_with_the_reason(
    aiops_env, prometheus
):
    db = store()
    make_detector(db, "orphan", name="nowhere")
    summary = await detect_metrics(now=at(prometheus.history.end + 15))
    assert summary["skipped"] == 1
    status = db.collector_status("orphan")
    assert status.state == "skipped" and "'nowhere' is not configured" in status.skip_reason


async def test_a_long_first_window_is_collected_in_pieces_that_fit_the_buffer(
    aiops_env, prometheus, monkeypatch
):
    h = prometheus.history
    monkeypatch.setenv("AIOPS_BUFFER_SIZE", "400")  # 2 series x 1,441 points would not fit
    db = store()
    make_detector(db)
    summary = await detect_metrics(now=at(h.end + h.step))
    (row,) = summary["detectors"]
    assert row["status"] == "ok" and row["dropped"] == 0 and row["samples"] == 2 * h.points
    status = db.collector_status("latency")
    assert status.dropped == 0 and status.samples == 2 * h.points and status.series == 2
    assert [a.ts for a in db.list_anomalies(detector="latency")] == [at(h.timestamp(SPIKE_INDEX))]
    assert db.get_checkpoint("latency") == at(h.end)


async def test_a_lookback_reaching_back_before_the_data_is_crossed_quickly(
    aiops_env, prometheus, monkeypatch
):
    """Four days of lookback over six hours of data: the empty stretch is probed in doubling
    pieces (not 10 steps at a time), nothing fails, and the data after it is scored."""
    import flows.metrics as module

    h = prometheus.history
    calls = []
    real = module.collect_batch

    async def counting(batch, label):
        samples = await real(batch, label)
        calls.append(samples)
        return samples

    monkeypatch.setattr(module, "collect_batch", counting)
    monkeypatch.setenv("AIOPS_BUFFER_SIZE", "100000")
    db = store()
    make_detector(db, lookback=4 * 86400)
    summary = await detect_metrics(now=at(h.end + h.step))
    (row,) = summary["detectors"]
    assert row["status"] == "ok", row
    assert row["samples"] == 2 * h.points
    assert [a.ts for a in db.list_anomalies(detector="latency")] == [at(h.timestamp(SPIKE_INDEX))]
    assert len(calls) < 20  # 23,040 steps before the data: 10, 20, 40, ... steps per probe
    assert db.get_checkpoint("latency") == at(h.end)


async def test_parameters_are_checked_by_the_same_model_as_the_api(aiops_env):
    from aiops.errors import InvalidInput

    with pytest.raises(InvalidInput, match="parameters.detector_ids"):
        await detect_metrics(detector_ids=["Not A Slug"])


@pytest.mark.parametrize("processes", [0, 2])
async def test_a_big_batch_scored_in_worker_processes_stores_what_in_process_scoring_does(
    aiops_env, prometheus, monkeypatch, processes
):
    from aiops import scoring

    monkeypatch.setenv("AIOPS_SCORE_PROCESSES", str(processes))
    h = prometheus.history
    db = store()
    n = scoring.MIN_PIECES + 4
    for k in range(n):
        make_detector(db, f"d{k:02d}", query=f"aiops_test_anomaly + {k % 3}")
    try:
        summary = await detect_metrics(now=at(h.end + h.step))
        assert (scoring._pool is not None) == (processes > 0)
    finally:
        scoring.shutdown()

    assert summary["ok"] == n and summary["failed"] == 0
    spike = at(h.timestamp(SPIKE_INDEX))
    for k in range(n):
        det = f"d{k:02d}"
        assert [(a.ts, a.labels["instance"]) for a in db.list_anomalies(detector=det)] == [
            (spike, "a")
        ], det
        (incident,) = db.list_incidents(detector=det)
        assert incident.opened_at == spike and incident.resolved_at is not None
        assert db.get_checkpoint(det) == at(h.end)
        assert len(db.load_states(det)) == 2
