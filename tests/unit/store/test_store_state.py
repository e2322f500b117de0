from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aiops.errors import InvalidInput, NotFound

T0 = datetime(2024, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.fixture
def detector(store, make_spec):
    return store.create_detector(make_spec("api"))


def test_model_state_round_trips_as_json_and_counts_versions(store, detector):
    labels = {"job": "api", "instance": "a"}
    key = 'instance="a",job="api"'
    store.save_states("api", {key: (labels, {"mean": 1.5, "n": [1, 2]})}, trained_at=T0)
    store.save_states("api", {key: (labels, {"mean": 2.0, "n": [3]})})  # online update

    assert store.load_states("api") == {key: (labels, {"mean": 2.0, "n": [3]}, T0)}
    (info,) = store.state_info("api")
    assert (info.version, info.trained_at) == (2, T0)
    assert store.reset_states("api") == 1
    assert store.load_states("api") == {}


@pytest.mark.parametrize(
    "states",
    [
        {"wrong-key": ({"a": "1"}, {})},
        {'a="1"': ({"a": "1"}, {"x": float("inf")})},
        {'a="1"': ({"a": "1"}, {"x": {1, 2}})},
        {'a="1"': "not a tuple"},
    ],
)
def test_save_states_rejects_bad_keys_and_non_json_state(store, detector, states):
    with pytest.raises(InvalidInput):
        store.save_states("api", states)


def test_checkpoint_never_moves_backwards(store, detector):
    assert store.get_checkpoint("api") is None
    assert store.advance_checkpoint("api", T0 + H) == T0 + H
    assert store.advance_checkpoint("api", T0) == T0 + H
    assert store.advance_checkpoint("api", "2024-01-01T03:00:00+02:00") == T0 + H
    assert store.advance_checkpoint("api", T0 + 2 * H) == T0 + 2 * H
    assert store.get_checkpoint("api") == T0 + 2 * H
    with pytest.raises(InvalidInput):
        store.advance_checkpoint("api", datetime(2024, 1, 2))  # naive: ambiguous
    store.reset_checkpoint("api")
    assert store.get_checkpoint("api") is None


def test_collector_status_tracks_successes_failures_and_skips(store, detector, make_spec):
    store.create_detector(make_spec("idle"))
    store.record_collection("api", False, error="connect refused", at=T0)
    status = store.record_collection("api", False, error="timeout", at=T0 + H)
    assert (status.state, status.consecutive_failures, status.last_error) == (
        "failed",
        2,
        "timeout",
    )
    status = store.record_collection(
        "api", True, samples=120, series=2, buffered=1, dropped=3, at=T0 + 2 * H
    )
    assert (status.state, status.consecutive_failures, status.samples, status.dropped) == (
        "ok",
        0,
        120,
        3,
    )
    assert status.last_success_at == T0 + 2 * H and status.last_error == "timeout"
    skipped = store.record_skip("api", "datasource prometheus unhealthy", at=T0 + 3 * H)
    assert (skipped.state, skipped.skip_reason, skipped.last_run_at) == (
        "skipped",
        "datasource prometheus unhealthy",
        T0 + 2 * H,
    )
    assert {s.detector_id: s.state for s in store.collector_statuses()} == {
        "api": "skipped",
        "idle": "never_run",
    }
    with pytest.raises(InvalidInput):
        store.record_collection("api", True, samples=-1)


def test_log_reports_are_saved_listed_newest_first_and_fetched(store):
    a = store.save_log_report(
        '{app="api"}', T0, T0 + H, {"errors": 3}, [{"template": "x <*>"}], "run-1"
    )
    b = store.save_log_report("/var/log/app.log", T0 + H, T0 + 2 * H, {"errors": 0})
    assert store.get_log_report(a.id) == a
    assert [r.id for r in store.list_log_reports()] == [b.id, a.id]
    assert [r.id for r in store.list_log_reports(source='{app="api"}')] == [a.id]
    assert [r.id for r in store.list_log_reports(since=T0 + 2 * H)] == [b.id]
    with pytest.raises(NotFound):
        store.get_log_report(999)
    with pytest.raises(InvalidInput):
        store.save_log_report("x", T0 + H, T0, {})


def test_miner_state_is_upserted_by_name(store):
    assert store.load_miner_state("api-logs") is None
    store.save_miner_state("api-logs", {"clusters": [1]})
    store.save_miner_state("api-logs", {"clusters": [1, 2]})
    assert store.load_miner_state("api-logs") == {"clusters": [1, 2]}


def test_backfill_plan_is_idempotent_and_progress_is_tracked(store, detector, make_spec):
    store.create_detector(make_spec("db"))
    windows = [(T0 + i * H, T0 + (i + 1) * H) for i in range(3)]
    assert store.plan_backfill("bf-1", ["api", "db"], windows) == 6
    assert store.plan_backfill("bf-1", ["api", "db"], windows) == 0

    pending = store.next_pending_windows("bf-1")
    assert [(w.detector_id, w.window_start) for w in pending[:3]] == [
        ("api", s) for s, _ in windows
    ]
    store.mark_window("bf-1", "api", T0, "running")
    store.mark_window("bf-1", "api", T0, "done")
    store.mark_window("bf-1", "api", T0 + H, "running")
    failed = store.mark_window("bf-1", "api", T0 + H, "failed", error="prometheus 503")
    assert (failed.attempts, failed.error) == (1, "prometheus 503")

    progress = store.backfill_progress("bf-1")
    assert (progress.total, progress.done, progress.failed, progress.pending) == (6, 1, 1, 4)
    todo = store.next_pending_windows("bf-1", detector_id="api")
    assert [w.window_start for w in todo] == [T0 + H, T0 + 2 * H]
    # the failed window used up its attempts: later windows are held back (models evolve in
    # time order, nothing may be scored past a gap); the other detector is not affected
    assert store.next_pending_windows("bf-1", detector_id="api", max_attempts=1) == []
    assert [
        w.window_start for w in store.next_pending_windows("bf-1", detector_id="db", max_attempts=1)
    ] == [T0, T0 + H, T0 + 2 * H]


def test_backfill_errors(store, detector):
    with pytest.raises(NotFound):
        store.backfill_progress("nope")
    with pytest.raises(NotFound):
        store.plan_backfill("bf", ["missing"], [(T0, T0 + H)])
    with pytest.raises(InvalidInput):
        store.plan_backfill("bf", ["api"], [(T0 + H, T0)])
    with pytest.raises(InvalidInput):
        store.plan_backfill("bad id!", ["api"], [(T0, T0 + H)])
    store.plan_backfill("bf", ["api"], [(T0, T0 + H)])
    with pytest.raises(InvalidInput):
        store.mark_window("bf", "api", T0, "exploded")
    with pytest.raises(NotFound):
        store.mark_window("bf", "api", T0 + H, "done")
