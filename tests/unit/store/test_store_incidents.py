"""Incidents in the store: one per run of anomalous points, whatever ticks, pieces, restarts
or reruns it spans; kept apart per source (live, each backfill); migration 0005."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import create_engine, inspect, text

from aiops.errors import InvalidInput, NotFound
from aiops.pipeline import run_detection
from aiops.store import Store, accept_any_kind, migrations, series_key

T = datetime(2024, 1, 1, tzinfo=UTC)
LABELS = {"instance": "a"}
KEY = series_key(LABELS)
HIGH, LOW = 100.0, 1.0  # the threshold detector below flags values above 10


def frame(values: list[float], start: int, labels: dict[str, str] = LABELS) -> pd.DataFrame:
    """One sample per minute from minute ``start``; None leaves the minute out (a gap)."""
    rows = [(T + timedelta(minutes=start + i), v) for i, v in enumerate(values) if v is not None]
    return pd.DataFrame(
        {
            "timestamp": pd.DatetimeIndex([r[0] for r in rows]),
            "value": [r[1] for r in rows],
            **{k: [v] * len(rows) for k, v in labels.items()},
        }
    )


def spec(**overrides):
    return {
        "id": "det",
        "kind": "threshold",
        "params": {"upper": 10.0},
        "status": "running",
        "resolve_after": 2,
        "datasource": {"query": "up", "step": "1m"},
        **overrides,
    }


def tick(
    store: Store,
    values: list[float],
    start: int,
    *,
    backfill: str | None = None,
    commit: bool = True,
):
    """Score minutes ``start ..`` as the detect-metrics flow does, continuing the stored states."""
    det = store.get_detector("det")
    states = store.load_states("det") if backfill is None else {}
    run = run_detection(
        detector_id="det",
        kind=det.kind,
        params=det.params,
        threshold=det.threshold,
        mode="running",
        frame=frame(values, start),
        states=states,
        params_hash=det.spec_hash,
        flow_run_id="run-1",
        incident_states=store.load_incident_states("det", backfill),
        resolve_after=det.resolve_after,
        step=60.0,
        until=T + timedelta(minutes=start + len(values) - 1),
    )
    if not commit:
        return run
    if backfill is None:
        return store.commit_detection(
            "det",
            events=run.events,
            states=run.states,
            incidents=run.incidents,
            incident_states=run.incident_states,
            latest=run.latest,
        )
    return run


def types(events) -> list[str]:
    return [e.type for e in events if e.type != "anomaly"]


def test_an_incident_spanning_ticks_is_one_incident_opened_and_resolved_once(store):
    store.create_detector(spec())
    first = tick(store, [LOW, HIGH, HIGH], 0)
    assert types(first) == ["incident.opened"]
    (incident,) = store.list_incidents(detector="det")
    assert (
        incident.state == "open"
        and incident.opened_at == T + timedelta(minutes=1)
        and incident.points == 2
    )
    # one normal point, then anomalous again: within resolve_after=2, the same incident
    second = tick(store, [LOW, HIGH * 3, LOW], 3)
    assert types(second) == []
    # two more normal points: still open; the third normal point in a row resolves it
    assert types(tick(store, [LOW], 6)) == []
    resolved = tick(store, [LOW, LOW], 7)
    assert types(resolved) == ["incident.resolved"]
    (incident,) = store.list_incidents(detector="det")
    assert incident.state == "resolved" and incident.resolved_at == T + timedelta(minutes=7)
    assert incident.last_anomalous_at == T + timedelta(minutes=4) and incident.points == 3
    assert incident.peak_at == T + timedelta(minutes=4) and incident.peak_value == HIGH * 3
    assert incident.severity == "critical" and incident.source == "live"
    assert incident.model_kind == "threshold" and incident.flow_run_id == "run-1"
    events = store.events_after(0, types=["incident.opened", "incident.resolved"])
    assert [(e.type, e.payload["incident_id"]) for e in events] == [
        ("incident.opened", incident.id),
        ("incident.resolved", incident.id),
    ]
    points = store.incident_points(incident)
    assert [p.ts for p in points] == [T + timedelta(minutes=m) for m in (1, 2, 4)]


def test_an_open_incident_continues_after_a_restart(backend_url):
    with Store.open(backend_url, kind_validator=accept_any_kind) as store:
        store.create_detector(spec())
        tick(store, [HIGH, HIGH], 0)
    with Store.open(backend_url, kind_validator=accept_any_kind) as store:  # a new process
        assert types(tick(store, [LOW, HIGH], 2)) == []
        assert types(tick(store, [LOW, LOW, LOW], 4)) == ["incident.resolved"]
        (incident,) = store.list_incidents()
        assert incident.points == 3 and incident.resolved_at == T + timedelta(minutes=6)


def test_a_rerun_of_the_same_window_creates_no_duplicate(store):
    store.create_detector(spec())
    run = tick(store, [HIGH, HIGH, LOW, LOW, LOW, HIGH], 0, commit=False)
    kwargs = dict(
        events=run.events,
        states=run.states,
        incidents=run.incidents,
        incident_states=run.incident_states,
    )
    first = store.commit_detection("det", **kwargs)
    assert types(first) == ["incident.opened", "incident.resolved", "incident.opened"]
    assert store.commit_detection("det", **kwargs) == []  # e.g. a retried task after a lost answer
    # and scoring the same minutes again from the stored states finds nothing new
    assert tick(store, [HIGH, HIGH, LOW, LOW, LOW, HIGH], 0) == []
    assert [(i.points, i.state) for i in store.list_incidents()] == [(2, "resolved"), (1, "open")]


def test_a_series_that_stops_reporting_resolves_once_its_missing_steps_pass(store):
    store.create_detector(spec())
    tick(store, [HIGH], 0)
    # the series sends nothing more: minutes 1..3 are missing, so normal
    run = run_detection(
        detector_id="det",
        kind="threshold",
        params={"upper": 10.0},
        threshold=1.0,
        mode="running",
        frame=pd.DataFrame(),
        states=store.load_states("det"),
        incident_states=store.load_incident_states("det"),
        resolve_after=2,
        step=60.0,
        until=T + timedelta(minutes=5),
    )
    inserted = store.commit_detection(
        "det", incidents=run.incidents, incident_states=run.incident_states
    )
    assert types(inserted) == ["incident.resolved"]
    assert store.list_incidents()[0].resolved_at == T + timedelta(minutes=3)


def test_a_gap_counts_as_normal_steps(store):
    store.create_detector(spec())
    tick(store, [HIGH, None, None, HIGH], 0)  # two missing minutes: within resolve_after
    assert len(store.list_incidents()) == 1
    tick(store, [None, None, None, HIGH], 4)  # three missing minutes: resolved, a new one opens
    assert [(i.opened_at, i.resolved_at) for i in store.list_incidents()] == [
        (T, T + timedelta(minutes=6)),
        (T + timedelta(minutes=7), None),
    ]


def backfill_window(store: Store, bf: str, start: int, pieces: list[list[float]]) -> list:
    """One backfill window scored in pieces (the flow's way), committed with its last piece."""
    window_start = T + timedelta(minutes=start)
    states, incident_states, earlier, minute = (
        {},
        store.load_incident_states("det", bf),
        None,
        start,
    )
    stored = store.load_backfill_states(bf, "det")
    states = {k: v["state"] for k, v in stored.items()}
    for values in pieces:
        run = run_detection(
            detector_id="det",
            kind="threshold",
            params={"upper": 10.0},
            threshold=1.0,
            mode="running",
            frame=frame(values, minute),
            states=states,
            incident_states=incident_states,
            resolve_after=2,
            step=60.0,
            until=T + timedelta(minutes=minute + len(values) - 1),
        )
        if earlier is not None:
            run.absorb(earlier)
        earlier = run
        incident_states.update({k: s for k, (_, s) in run.incident_states.items()})
        states.update({k: s for k, (_, s) in run.states.items()})
        minute += len(values)
    return store.complete_backfill_window(
        bf,
        "det",
        window_start,
        events=earlier.events,
        states=earlier.states,
        incidents=earlier.incidents,
        incident_states=earlier.incident_states,
    )


def test_backfill_pieces_and_windows_make_one_incident_apart_from_live(store):
    store.create_detector(spec())
    windows = [(T, T + timedelta(minutes=4)), (T + timedelta(minutes=4), T + timedelta(minutes=8))]
    store.plan_backfill("bf-1", ["det"], windows)
    first = backfill_window(store, "bf-1", 0, [[LOW, HIGH], [HIGH, LOW]])
    assert types(first) == ["incident.opened"]
    second = backfill_window(store, "bf-1", 4, [[HIGH], [LOW, LOW, LOW]])
    assert types(second) == ["incident.resolved"]
    (incident,) = store.list_incidents(source="backfill")
    assert (
        incident.backfill_id == "bf-1"
        and incident.points == 3
        and incident.resolved_at == T + timedelta(minutes=7)
    )
    assert store.list_incidents(source="live") == []
    assert store.list_incidents(backfill_id="bf-1") == [incident]
    assert store.load_incident_states("det") == {}  # live grouping untouched
    # the same window again (a resumed backfill that redoes it) adds nothing
    assert backfill_window(store, "bf-1", 4, [[HIGH], [LOW, LOW, LOW]]) == []
    # another backfill over the same range: the incident is already stored, kept as it was
    store.plan_backfill("bf-2", ["det"], windows)
    backfill_window(store, "bf-2", 0, [[LOW, HIGH, HIGH, LOW]])
    backfill_window(store, "bf-2", 4, [[HIGH, LOW, LOW, LOW]])
    assert store.list_incidents() == [incident]
    assert store.backfill_incident_counts("bf-1") == {"opened": 1, "resolved": 1}


def test_list_incidents_filters_and_refuses_bad_ones_naming_the_field(store):
    store.create_detector(spec())
    tick(store, [HIGH, LOW, LOW, LOW, HIGH], 0)  # one resolved (0..3), one open from minute 4
    resolved, open_ = store.list_incidents()
    assert [i.id for i in store.list_incidents(state="open")] == [open_.id]
    assert [i.id for i in store.list_incidents(state="resolved")] == [resolved.id]
    assert [i.id for i in store.list_incidents(since=T + timedelta(minutes=3, seconds=30))] == [
        open_.id
    ]
    assert [i.id for i in store.list_incidents(until=T + timedelta(minutes=4))] == [resolved.id]
    assert [i.id for i in store.list_incidents(after_id=resolved.id)] == [open_.id]
    assert [i.id for i in store.list_incidents(newest_first=True, limit=1)] == [open_.id]
    assert store.get_incident(open_.id) == open_
    with pytest.raises(NotFound):
        store.get_incident(10**9)
    for kwargs, field in (
        ({"state": "closed"}, "state"),
        ({"source": "x"}, "source"),
        ({"since": T + timedelta(hours=1), "until": T}, "since"),
        ({"limit": 0}, "limit"),
    ):
        with pytest.raises(InvalidInput) as err:
            store.list_incidents(**kwargs)
        assert err.value.field == field


def test_metrics_count_live_incidents_and_list_the_open_ones(store):
    store.create_detector(spec())
    tick(store, [HIGH, LOW, LOW, LOW, HIGH], 0)
    opened, counts = store.incident_metrics()
    assert [i.opened_at for i in opened] == [T + timedelta(minutes=4)] and counts == {"det": 2}


def test_deleting_a_detector_resolves_its_open_incidents(store):
    store.create_detector(spec())
    tick(store, [HIGH], 0)
    store.delete_detector("det")
    (incident,) = store.list_incidents()
    assert incident.state == "resolved"
    (event,) = store.events_after(0, types=["incident.resolved"])
    assert event.payload["reason"] == "detector deleted"


def test_resolve_after_is_a_detector_setting_with_a_default(store):
    from aiops.incidents import DEFAULT_RESOLVE_AFTER

    assert (
        store.create_detector(spec(id="d2", resolve_after=DEFAULT_RESOLVE_AFTER)).resolve_after
        == DEFAULT_RESOLVE_AFTER
    )
    created = store.create_detector(
        {k: v for k, v in spec(id="d3").items() if k != "resolve_after"}
    )
    assert created.resolve_after == DEFAULT_RESOLVE_AFTER
    assert store.update_detector("d3", resolve_after=0).resolve_after == 0
    with pytest.raises(InvalidInput) as err:
        store.update_detector("d3", resolve_after=-1)
    assert err.value.field == "resolve_after"


def test_migration_0005_adds_incidents_to_a_0004_database(backend_url):
    engine = create_engine(backend_url)
    try:
        migrations.upgrade(engine, "0004")
        with engine.begin() as conn:
            now = "2024-01-01 00:00:00"
            conn.execute(
                text(
                    "INSERT INTO detector (id, name, kind, params, status, threshold, "
                    "interval_seconds, spec_hash, status_changed_at, created_at, updated_at) "
                    f"VALUES ('old', 'old', 'zscore', '{{}}', 'running', 1.0, 60, 'h', '{now}', "
                    f"'{now}', '{now}')"
                )
            )
        assert "incident" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()
    with Store.open(backend_url, kind_validator=accept_any_kind) as store:
        assert migrations.current_revision(store.engine) == migrations.head_revision()
        assert {"incident", "incident_state"} <= set(inspect(store.engine).get_table_names())
        assert store.get_detector("old").resolve_after == 20  # the default when 0005 was written
        assert store.list_incidents() == []
