"""commit_detection writes a run's events, states, checkpoint and status together or not at all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aiops.errors import InvalidInput, NotFound
from aiops.store import series_key

T = datetime(2024, 1, 1, tzinfo=UTC)
LABELS = {"instance": "a"}


def event(minute: int, score: float = 2.0) -> dict:
    return {
        "detector_id": "api-errors",
        "labels": LABELS,
        "ts": T + timedelta(minutes=minute),
        "value": 1.0,
        "score": score,
    }


def test_a_run_commits_events_states_checkpoint_and_status_together(store, make_spec):
    store.create_detector(make_spec())
    key = series_key(LABELS)
    inserted = store.commit_detection(
        "api-errors",
        events=[event(1), event(2)],
        states={key: (LABELS, {"mean": 1.5})},
        trained_at=T,
        checkpoint=T + timedelta(minutes=5),
        collection={"samples": 5, "series": 1},
    )
    assert [e.ts for e in inserted] == [T + timedelta(minutes=1), T + timedelta(minutes=2)]
    assert store.load_states("api-errors")[key].state == {"mean": 1.5}
    assert store.get_checkpoint("api-errors") == T + timedelta(minutes=5)
    status = store.collector_status("api-errors")
    assert status.state == "ok" and status.samples == 5
    # the same run again adds nothing
    assert (
        store.commit_detection(
            "api-errors", events=[event(1), event(2)], checkpoint=T + timedelta(minutes=5)
        )
        == []
    )


def test_a_failure_inside_the_run_leaves_nothing_behind(store, make_spec):
    store.create_detector(make_spec())
    key = series_key(LABELS)
    with pytest.raises(InvalidInput):
        store.commit_detection(
            "api-errors",
            events=[event(1)],
            states={key: (LABELS, {"mean": 1.5})},
            checkpoint=T + timedelta(minutes=5),
            collection={"samples": -1},  # refused after the events were written in the transaction
        )
    assert store.list_anomalies(detector="api-errors") == []
    assert store.load_states("api-errors") == {}
    assert store.get_checkpoint("api-errors") is None


def test_an_unreachable_database_is_store_unavailable(tmp_path):
    from aiops.errors import StoreUnavailable
    from aiops.store import Store

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the database directory should be")
    with pytest.raises(StoreUnavailable):
        Store.open(f"sqlite:///{blocker}/aiops.db")


def test_a_backfill_window_completes_with_its_events_and_its_own_model_states(store, make_spec):
    store.create_detector(make_spec())
    key = series_key(LABELS)
    store.plan_backfill(
        "bf-1",
        ["api-errors"],
        [(T, T + timedelta(hours=1)), (T + timedelta(hours=1), T + timedelta(hours=2))],
    )
    assert store.load_backfill_states("bf-1", "api-errors") == {}
    inserted = store.complete_backfill_window(
        "bf-1", "api-errors", T, events=[event(1)], states={key: (LABELS, {"n": 1})}
    )
    assert len(inserted) == 1
    assert store.load_backfill_states("bf-1", "api-errors") == {
        key: {"labels": LABELS, "state": {"n": 1}}
    }
    assert store.load_states("api-errors") == {}  # the live model is untouched
    assert store.backfill_progress("bf-1").done == 1
    # the same window again (a resumed run) adds no event
    assert store.complete_backfill_window("bf-1", "api-errors", T, events=[event(1)]) == []
    with pytest.raises(NotFound):
        store.complete_backfill_window("bf-1", "api-errors", T + timedelta(hours=5))
