"""A backfill on a Dask cluster (``AIOPS_DASK_ADDRESS``, prefect-dask) stores exactly what the
in-process backfill stores, resumes, and adds nothing when run again; a bad address is one
clear error."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest

from aiops.errors import ConfigError
from flows.backfill import backfill
from tasks._runtime import store
from tests.support.prometheus import SPIKE_INDEX, free_port

pytestmark = [pytest.mark.prefect, pytest.mark.prometheus]

VOLATILE = {"id", "flow_run_id", "created_at", "updated_at"}


def at(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def stored(db, bf_id: str, detectors: list[str]) -> dict:
    """What a backfill leaves in the store, without ids and run provenance."""
    return {
        "anomalies": sorted(
            (
                tuple(sorted((k, str(v)) for k, v in a.model_dump().items() if k not in VOLATILE))
                for d in detectors
                for a in db.list_anomalies(detector=d)
            ),
        ),
        "incidents": sorted(
            (
                tuple(sorted((k, str(v)) for k, v in i.model_dump().items() if k not in VOLATILE))
                for d in detectors
                for i in db.list_incidents(detector=d)
            ),
        ),
        "models": {d: db.load_backfill_states(bf_id, d) for d in detectors},
        "incident_states": {d: db.load_incident_states(d, bf_id) for d in detectors},
        "progress": db.backfill_progress(bf_id).model_dump(),
    }


def test_a_backfill_on_a_dask_cluster_equals_the_in_process_backfill(
    aiops_env, prometheus, monkeypatch
):
    from distributed import LocalCluster

    h = prometheus.history
    db = store()
    query = {"query": 'aiops_test_anomaly{instance="a"}', "step": 15, "lookback": 6 * 3600}
    kinds = {"z": ("zscore", {"window": 40}), "t": ("threshold", {"upper": 12.5}), "m": ("mad", {})}
    for det_id, (kind, params) in kinds.items():
        db.create_detector(
            {
                "id": det_id,
                "name": det_id,
                "kind": kind,
                "params": params,
                "status": "paused",
                "datasource": query,
            }
        )
    db.update_detector("t", resolve_after=30)
    ids = sorted(kinds)
    copy = aiops_env / "in-process.db"  # the same store before any run, for the in-process backfill
    with sqlite3.connect(aiops_env / "aiops.db") as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    start, end = at(h.start), at(h.end + h.step)

    # the workers inherit this process's settings (the store, Prometheus), as a cluster's would
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        monkeypatch.setenv("AIOPS_DASK_ADDRESS", cluster.scheduler_address)
        part = backfill_sync(ids, start, end, max_windows=8)  # stopped part-way ...
        assert part["progress"]["done"] == 8 and part["progress"]["pending"] == 3 * 7 - 8
        rest = backfill_sync(ids, start, end)  # ... and resumed
        again = backfill_sync(ids, start, end)  # nothing left: nothing new
    on_dask = stored(db, rest["backfill_id"], ids)

    assert rest["backfill_id"] == part["backfill_id"] == again["backfill_id"]
    assert part["runner"] == rest["runner"] == f"dask {cluster.scheduler_address}"
    assert sum(r["windows"] for r in part["detectors"] + rest["detectors"]) == 3 * 7
    assert again["anomalies"] == 0 and all(r["windows"] == 0 for r in again["detectors"])
    assert stored(db, rest["backfill_id"], ids) == on_dask
    spike = at(h.timestamp(SPIKE_INDEX))
    assert spike in {a.ts for a in db.list_anomalies(detector="z")}

    monkeypatch.delenv("AIOPS_DASK_ADDRESS")
    monkeypatch.setenv("AIOPS_DATABASE_URL", f"sqlite:///{copy}")
    whole = backfill_sync(ids, start, end)
    assert whole["backfill_id"] == rest["backfill_id"] and whole["runner"] == "in-process"
    assert whole["anomalies"] == part["anomalies"] + rest["anomalies"]
    assert whole["incidents_opened"] == part["incidents_opened"] + rest["incidents_opened"]
    assert stored(store(), whole["backfill_id"], ids) == on_dask


def backfill_sync(ids, start, end, **kw):
    import asyncio

    return asyncio.run(backfill(ids, start, end, window="1h", **kw))


async def test_an_unreachable_dask_scheduler_is_one_clear_error(
    aiops_env, prometheus, monkeypatch, capsys
):
    import flows.backfill as module
    from aiops.cli import main

    db = store()
    db.create_detector(
        {
            "id": "z",
            "name": "z",
            "kind": "zscore",
            "status": "paused",
            "datasource": {"query": "aiops_test_anomaly", "step": 15, "lookback": 3600},
        }
    )
    monkeypatch.setattr(module, "DASK_CONNECT_TIMEOUT", "1s")
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("AIOPS_DASK_ADDRESS", address)
    h = prometheus.history
    with pytest.raises(
        ConfigError, match=f"cannot reach the Dask scheduler at {address} \\(AIOPS_DASK_ADDRESS\\)"
    ):
        await backfill(["z"], at(h.start), at(h.end + h.step), window="2h")

    # the command says so in one line before it starts anything
    capsys.readouterr()
    assert (
        main(["backfill", "--detector", "z", "--start", str(h.start), "--end", str(h.end + h.step)])
        == 2
    )
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(
        "aiops: configuration error: cannot reach the Dask scheduler at " + address
    )


async def test_a_piece_that_meets_an_outage_raises_for_a_retry_and_the_retry_finishes_it(
    aiops_env, prometheus, monkeypatch
):
    """``backfill-window`` leaves a datasource outage to its (transient-only) retries instead of
    marking the window failed; the retried piece finds the window and completes it once."""
    from prefect.logging import disable_run_logger

    from aiops.errors import DatasourceUnavailable
    from tasks._runtime import settings
    from tasks.backfill import backfill_window

    h = prometheus.history
    db = store()
    det = db.create_detector(
        {
            "id": "z",
            "name": "z",
            "kind": "zscore",
            "status": "paused",
            "datasource": {
                "query": 'aiops_test_anomaly{instance="a"}',
                "step": 15,
                "lookback": 3600,
            },
        }
    )
    start = at(h.start)
    db.plan_backfill("bf-outage", ["z"], [(start, at(h.start + 3600))])
    args = ("bf-outage", [det], 1, start, None, 1_000_000, None)
    monkeypatch.setenv(
        "AIOPS_PROMETHEUS_URL", f"http://127.0.0.1:{free_port()}"
    )  # refuses connections
    with disable_run_logger():
        with pytest.raises(DatasourceUnavailable):
            await backfill_window.fn(settings(), *args)
        [left] = db.next_pending_windows("bf-outage")
        assert left.status != "failed"  # not recorded as the window's failure: the retry takes it
        monkeypatch.setenv("AIOPS_PROMETHEUS_URL", prometheus.url)
        [row] = await backfill_window.fn(settings(), *args)
        again = await backfill_window.fn(settings(), *args)
    assert row["error"] is None and row["windows"] == 1 and row["samples"] == 240
    assert again[0]["windows"] == 0 and db.backfill_progress("bf-outage").done == 1
