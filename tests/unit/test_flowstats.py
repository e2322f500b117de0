"""The flows' own metrics: a tick's summary as updates, counters that add up across runs (as
several workers' runs do) and gauges the newest run sets, in the store that /metrics reads."""

from __future__ import annotations

from datetime import UTC, datetime

from aiops.flowstats import log_job_updates, store_error_update, tick_updates
from aiops.store import Store

ROWS = [
    {"detector": "a", "status": "ok", "samples": 100, "dropped": 0},
    {"detector": "b", "status": "failed", "samples": 0, "dropped": 0},
    {"detector": "c", "status": "ok", "samples": 50, "dropped": 5},
    {"detector": "d", "status": "skipped", "samples": 0, "dropped": 0},
]
DATASOURCE = {"a": "prometheus", "b": "loki", "c": "prometheus", "d": "prometheus"}


def tick(duration: float, store_errors: int = 0) -> list:
    summary = {
        "due": 4,
        "detectors": ROWS,
        "elsewhere": {"e": "claimed"},
        "store_errors": store_errors,
    }
    return tick_updates(
        summary,
        datasource_of=DATASOURCE,
        collection_failed=["b"],
        duration_seconds=duration,
        lag_seconds=3.0,
        finished_at=1_700_000_000.0,
    )


def values(db: Store) -> dict[tuple, float]:
    return {(m.name, tuple(sorted(m.labels.items()))): m.value for m in db.flow_metrics()}


def test_runs_add_up_their_counters_and_the_newest_sets_the_gauges(tmp_path):
    with Store.open(f"sqlite:///{tmp_path / 'aiops.db'}") as db:
        db.record_flow_metrics(tick(2.0))
        db.record_flow_metrics(tick(5.0, store_errors=1))  # another worker's run
        db.record_flow_metrics(
            log_job_updates("errors", failed=True) + [store_error_update("analyze-logs")]
        )
        v = values(db)
    assert v[("aiops_flow_ticks", ())] == 2 and v[("aiops_flow_tick_seconds", ())] == 7.0
    assert (
        v[("aiops_flow_tick_duration_seconds", ())] == 5.0
        and v[("aiops_flow_tick_lag_seconds", ())] == 3.0
    )
    assert v[("aiops_flow_detector_runs", (("outcome", "ok"),))] == 4
    assert v[("aiops_flow_detector_runs", (("outcome", "failed"),))] == 2
    assert v[("aiops_flow_tick_detectors", (("outcome", "due"),))] == 4
    assert v[("aiops_flow_tick_detectors", (("outcome", "elsewhere"),))] == 1
    assert v[("aiops_flow_samples_collected", (("datasource", "prometheus"),))] == 300
    assert v[("aiops_flow_samples_dropped", (("datasource", "prometheus"),))] == 10
    assert v[("aiops_flow_collection_errors", (("datasource", "loki"),))] == 2
    assert ("aiops_flow_collection_errors", (("datasource", "prometheus"),)) not in v
    assert v[("aiops_flow_store_errors", (("flow", "detect-metrics"),))] == 1
    assert v[("aiops_flow_store_errors", (("flow", "analyze-logs"),))] == 1
    assert v[("aiops_flow_log_jobs", (("log_job", "errors"), ("outcome", "failed")))] == 1


def test_backfill_progress_counts_windows_of_unfinished_backfills(tmp_path):
    with Store.open(f"sqlite:///{tmp_path / 'aiops.db'}") as db:
        db.create_detector(
            {"id": "d", "kind": "zscore", "datasource": {"name": "prometheus", "query": "up"}}
        )
        t = [datetime(2024, 1, 1, h, tzinfo=UTC) for h in range(4)]
        for bf in ("open", "finished"):
            db.plan_backfill(bf, ["d"], [(t[0], t[1]), (t[1], t[2]), (t[2], t[3])])
        for start in (t[0], t[1], t[2]):
            db.mark_window("finished", "d", start, "done")
        db.mark_window("open", "d", t[0], "done")
        db.mark_window("open", "d", t[1], "failed", "boom")
        counts = db.backfill_window_counts()
    assert counts == {"open": {"pending": 1, "running": 0, "done": 1, "failed": 1}}
