from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from aiops.errors import InvalidInput
from aiops.store import SeverityPolicy, Store, accept_any_kind, series_key

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def anomaly(minute: int, detector: str = "api", score: float = 2.0, **extra):
    return {
        "detector_id": detector,
        "labels": {"instance": "a:9090", "job": "api"},
        "ts": T0 + timedelta(minutes=minute),
        "value": 10.0 + minute,
        "score": score,
        "expected": 5.0,
        "lower": 4.0,
        "upper": 6.0,
        **extra,
    }


def test_inserting_the_same_events_twice_inserts_nothing_the_second_time(store):
    first = store.insert_events([anomaly(0), anomaly(1)])
    assert len(first) == 2
    assert store.insert_events([anomaly(0), anomaly(1)]) == []
    assert store.max_event_id() == first[-1].id


def test_insert_returns_only_new_rows_in_ascending_id_order(store):
    store.insert_events([anomaly(1)])
    inserted = store.insert_events([anomaly(3), anomaly(1), anomaly(2), anomaly(2)])
    assert [e.ts.minute for e in inserted] == [3, 2]
    assert [e.id for e in inserted] == sorted(e.id for e in inserted)
    event = inserted[0]
    assert event.series_key == 'instance="a:9090",job="api"'
    assert (event.severity, event.type, event.expected) == ("warning", "anomaly", 5.0)
    assert event.ts.tzinfo is not None and event.created_at.tzinfo is not None


def test_event_ids_increase_and_are_never_reused_after_deletes(store):
    ids = [e.id for e in store.insert_events([anomaly(m) for m in range(5)])]
    assert ids == sorted(ids) and len(set(ids)) == 5
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM event"))
    (next_event,) = store.insert_events([anomaly(10)])
    assert next_event.id > ids[-1]


def test_log_events_without_detector_are_idempotent_too(store):
    event = {"type": "log.new_template", "ts": T0, "payload": {"template": "user <*> logged in"}}
    (stored,) = store.insert_events([event])
    assert stored.detector_id is None and stored.severity == "info"
    assert store.insert_events([event]) == []


def test_severity_comes_from_the_policy_unless_given(db_url):
    with Store.open(db_url, severity=SeverityPolicy(warning=1.0, critical=2.0)) as s:
        events = s.insert_events(
            [
                anomaly(0, score=1.5),
                anomaly(1, score=2.0),
                anomaly(2, score=0.5),
                anomaly(3, score=9, severity="info"),
            ]
        )
    assert [e.severity for e in events] == ["warning", "critical", "info", "info"]


def test_nan_values_are_stored_as_null(store):
    (event,) = store.insert_events([anomaly(0, expected=float("nan"))])
    assert event.expected is None


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"ts": datetime(2024, 1, 1)}, "rows[0].ts"),
        ({"ts": T0, "type": "Bad Type"}, "rows[0].type"),
        ({"ts": T0, "severity": "fatal"}, "rows[0].severity"),
        ({"ts": T0, "payload": {"x": object()}}, "rows[0].payload"),
        ({}, "rows[0].ts"),
        ({"ts": T0, "detector_id": "Bad Id"}, "rows[0].detector_id"),
    ],
)
def test_bad_events_raise_invalid_input_naming_the_field(store, row, field):
    with pytest.raises(InvalidInput) as info:
        store.insert_events([row])
    assert info.value.field == field


def test_events_after_pages_through_all_events_in_id_order(store):
    store.insert_events([anomaly(m) for m in range(7)])
    store.insert_events([{"type": "log.new_template", "ts": T0}])
    seen, cursor = [], 0
    while page := store.events_after(cursor, limit=3):
        seen.extend(page)
        cursor = page[-1].id
    assert [e.id for e in seen] == list(range(1, 9))
    assert len(store.events_after(0, detector="api")) == 7
    assert [e.type for e in store.events_after(0, types=["log.new_template"])] == [
        "log.new_template"
    ]
    assert store.events_after(store.max_event_id()) == []


@pytest.mark.parametrize("kwargs", [{"limit": 0}, {"limit": 10_001}, {"after_id": -1}])
def test_events_after_rejects_bad_paging(store, kwargs):
    with pytest.raises(InvalidInput):
        store.events_after(**kwargs)


def test_list_anomalies_filters_by_detector_and_time_and_pages_by_id(store):
    store.insert_events([anomaly(m) for m in range(6)] + [anomaly(0, detector="db")])
    store.insert_events([{"type": "log.new_template", "ts": T0}])
    window = store.list_anomalies(
        "api", since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=4)
    )
    assert [e.ts.minute for e in window] == [1, 2, 3]
    page1 = store.list_anomalies(limit=4)
    page2 = store.list_anomalies(after_id=page1[-1].id, limit=4)
    assert len(page1) == 4 and len(page2) == 3
    newest = store.list_anomalies(newest_first=True, limit=2)
    assert [e.id for e in newest] == [7, 6]
    assert [e.id for e in store.list_anomalies(newest_first=True, before_id=6, limit=2)] == [5, 4]
    with pytest.raises(InvalidInput):
        store.list_anomalies(since=T0 + timedelta(hours=1), until=T0)


def test_latest_scores_hold_the_newest_score_of_every_series_normal_or_not(store):
    for det in ("api", "db"):
        store.create_detector({"id": det, "kind": "zscore", "datasource": {"query": "up"}})
    a, b = {"instance": "a"}, {"instance": "b"}

    def score(labels, minute, value):
        return {
            "series_key": series_key(labels),
            "labels": labels,
            "ts": T0 + timedelta(minutes=minute),
            "value": 1.0,
            "score": value,
        }

    store.commit_detection("api", latest=[score(a, 1, 0.2), score(b, 1, 3.0)])
    store.commit_detection("api", latest=[score(a, 2, 0.4)])
    store.commit_detection("api", latest=[score(b, 0, 9.0)])  # older than what is stored: ignored
    store.commit_detection("db", latest=[score(a, 1, float("nan"))])
    latest = {(s.detector_id, s.series_key): s.score for s in store.latest_scores()}
    assert latest == {
        ("api", 'instance="a"'): 0.4,
        ("api", 'instance="b"'): 3.0,
        ("db", 'instance="a"'): None,
    }


def test_several_threads_writing_and_reading_never_see_database_is_locked(db_url):
    errors: list[BaseException] = []
    with Store.open(db_url, kind_validator=accept_any_kind) as store:
        store.create_detector({"id": "api", "kind": "zscore", "datasource": {"query": "up"}})

        def writer(n: int) -> None:
            try:
                for batch in range(10):
                    # overlapping rows between threads: the duplicates must be skipped silently
                    store.insert_events([anomaly(batch * 10 + i) for i in range(n % 3, 10)])
                    store.advance_checkpoint("api", T0 + timedelta(minutes=batch))
                    store.record_collection("api", True, samples=batch)
            except BaseException as exc:
                errors.append(exc)

        def reader() -> None:
            try:
                for _ in range(30):
                    store.events_after(0, limit=1000)
                    store.due_detectors()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
        threads += [threading.Thread(target=reader) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        events = store.events_after(0, limit=1000)
        assert len(events) == 100
        assert [e.id for e in events] == sorted({e.id for e in events})
        assert store.get_checkpoint("api") == T0 + timedelta(minutes=9)
