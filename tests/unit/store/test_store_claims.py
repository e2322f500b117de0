"""Claims and batch commits (aiops.store.batch), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from aiops.store import BatchCommit

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def make(store, make_spec, n: int = 6) -> list[str]:
    ids = [f"d-{k}" for k in range(n)]
    for i in ids:
        store.create_detector(make_spec(i, status="running", interval_seconds=30))
    return ids


def commit(det_id: str, expected, checkpoint) -> BatchCommit:
    return BatchCommit(
        detector_id=det_id,
        expected=expected,
        checkpoint=checkpoint,
        collection={"samples": 1, "series": 1, "at": NOW},
    )


def test_two_runs_never_claim_the_same_detector(store, make_spec):
    ids = make(store, make_spec)
    a = store.claim_detectors(ids, "run-a", now=NOW, lease_seconds=60, limit=4, holder="h:1")
    b = store.claim_detectors(ids, "run-b", now=NOW, lease_seconds=60, limit=10, holder="h:2")
    assert a.claimed == sorted(ids)[:4] and b.claimed == sorted(ids)[4:]
    assert {c.owner for c in store.claims(ids).values()} == {"run-a", "run-b"}


def test_concurrent_claims_split_the_detectors_without_overlap(store, make_spec):
    ids = make(store, make_spec, 40)
    got: dict[str, list[str]] = {}

    def claim(owner: str) -> None:
        mine: list[str] = []
        remaining = list(ids)
        for _ in range(len(ids)):  # as the flow does: what a claim looked at is not asked again
            r = store.claim_detectors(remaining, owner, now=NOW, lease_seconds=60, limit=3)
            if not r.considered:
                break
            mine += r.claimed
            remaining = [i for i in remaining if i not in set(r.considered)]
        got[owner] = mine

    threads = [threading.Thread(target=claim, args=(f"run-{k}",)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    claimed = [i for mine in got.values() for i in mine]
    assert sorted(claimed) == sorted(ids)  # every detector once, none twice


def test_a_lapsed_claim_is_taken_over_and_the_late_commit_is_refused(store, make_spec):
    (det,) = make(store, make_spec, 1)
    store.claim_detectors([det], "dead", now=NOW, lease_seconds=0.001, limit=1, holder="h:9")
    threading.Event().wait(0.01)  # the lease (1 ms) lapses
    taken = store.claim_detectors([det], "alive", now=NOW, lease_seconds=60, limit=1)
    assert taken.claimed == [det] and taken.taken_over[det].owner == "dead"
    late = store.commit_batch("dead", [commit(det, None, NOW)])
    assert det in late.refused and "claim lost" in late.refused[det]
    assert store.get_checkpoint(det) is None
    ok = store.commit_batch("alive", [commit(det, None, NOW)], release=[det])
    assert det in ok.inserted and store.get_checkpoint(det) == NOW
    assert store.claims([det]) == {}  # released with the commit


def test_a_commit_continuing_from_a_moved_checkpoint_is_refused(store, make_spec):
    (det,) = make(store, make_spec, 1)
    store.claim_detectors([det], "run", now=NOW, lease_seconds=60, limit=1)
    store.commit_batch("run", [commit(det, None, NOW)])
    again = store.commit_batch("run", [commit(det, None, NOW + timedelta(minutes=1))])
    assert "window already committed" in again.refused[det]
    assert store.get_checkpoint(det) == NOW


def test_a_detector_run_since_the_tick_began_is_not_claimed_again(store, make_spec):
    (det,) = make(store, make_spec, 1)
    store.claim_detectors([det], "first", now=NOW, lease_seconds=60, limit=1)
    store.commit_batch("first", [commit(det, None, NOW)], release=[det])
    second = store.claim_detectors([det], "second", now=NOW, lease_seconds=60, limit=1)
    assert second.claimed == [] and "already run" in second.not_due[det]


def test_failures_and_skips_are_recorded_and_release_their_claims(store, make_spec):
    a, b = make(store, make_spec, 2)
    store.claim_detectors([a, b], "run", now=NOW, lease_seconds=60, limit=2)
    store.record_batch_outcomes("run", failed={a: "boom"}, skipped={b: "no complete step"}, at=NOW)
    assert (
        store.collector_status(a).state == "failed"
        and store.collector_status(a).consecutive_failures == 1
    )
    assert store.collector_status(b).skip_reason == "no complete step"
    assert store.claims([a, b]) == {}
