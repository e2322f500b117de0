"""Scoring in worker processes gives what scoring in-process gives, and survives lost workers."""

from __future__ import annotations

import copy
import logging
import math
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from aiops import scoring
from aiops.detectors import KINDS
from aiops.store import Store, accept_any_kind
from aiops.store.batch import BatchInputs
from aiops.tick import DetectorWork, detect_pieces, error_message, plan_work

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
STEP = 60
POINTS = 240


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Store]:
    with Store.open(Store.default_url(tmp_path / "data"), kind_validator=accept_any_kind) as s:
        yield s


@pytest.fixture(autouse=True)
def _stop_pool() -> Iterator[None]:
    yield
    scoring.shutdown()


def _frame(k: int, series: int) -> pd.DataFrame:
    """``series`` series over the window, a spike in each, a few NaNs and a late duplicate."""
    rng = np.random.default_rng(k)
    start = NOW - timedelta(seconds=STEP * POINTS)
    ts = pd.date_range(start, periods=POINTS, freq=f"{STEP}s", tz="UTC")
    parts = []
    for s in range(series):
        values = 50 + k + rng.normal(0, 1, POINTS)
        values[150 + 7 * s + k % 20] += 25
        values[rng.integers(0, POINTS, 3)] = np.nan
        parts.append(pd.DataFrame({"timestamp": ts, "value": values, "shard": str(s)}))
    frame = pd.concat(parts, ignore_index=True)
    frame = pd.concat([frame, frame.iloc[[5]].assign(value=60.0 + k)], ignore_index=True)
    return frame.assign(shard=frame["shard"].astype("category"))


def _works(
    db: Store, n: int, *, prefix: str = "d", failing: int | None = None
) -> list[DetectorWork]:
    kinds = [k for k in KINDS if k not in ("seasonal", "auto")]  # both need days of history
    works = []
    for k in range(n):
        spec: dict[str, Any] = {
            "id": f"{prefix}{k:02d}",
            "kind": kinds[k % len(kinds)],
            "params": {"upper": 65.0} if kinds[k % len(kinds)] == "threshold" else {},
            "status": "running",
            "datasource": {
                "query": f"{prefix} + {k}",
                "step": STEP,
                "lookback": STEP * POINTS,
            },
        }
        if k == failing:  # a step naming a label the series lack: fails this detector only
            spec["transforms"] = [{"op": "aggregate", "how": "sum", "by": ["nope"]}]
        det = db.create_detector(spec)
        work = plan_work(det, BatchInputs(None, {}, {}), NOW)
        assert isinstance(work, DetectorWork)
        work.next_piece(100_000)
        work.collected = {"frame": _frame(k, 1 + k % 3)}
        works.append(work)
    return works


def _plain(x: Any) -> Any:
    """A comparable form: arrays as lists, NaN as a marker, dataclasses as dicts."""
    if hasattr(x, "__dataclass_fields__"):
        return {f: _plain(getattr(x, f)) for f in x.__dataclass_fields__}
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return [_plain(v) for v in x.tolist()]
    if isinstance(x, (float, np.floating)):
        return "nan" if math.isnan(x) else float(x)
    return x


def _outcome(results: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (f"error: {error_message(v)}" if isinstance(v, BaseException) else _plain(v))
        for k, v in results.items()
    }


def test_worker_processes_score_exactly_as_in_process_including_failures_and_continued_states(
    db: Store,
):
    works = _works(db, 2 * scoring.MIN_PIECES, failing=3)
    alone = copy.deepcopy(works)
    pooled = scoring.score_pieces(works, "run-1", 2)
    expected = detect_pieces(alone, "run-1")
    assert _outcome(pooled) == _outcome(expected)
    assert "error: " in _outcome(pooled)["d03"]
    assert sum(len(r.events) for r in pooled.values() if not isinstance(r, Exception)) > 20
    assert [w.run is not None for w in works] == [w.run is not None for w in alone]
    # the next piece continues the states the workers learned: still the same as in-process
    later_works, later_alone = [], []
    for work, twin in zip(works, alone, strict=True):
        if work.run is None:
            continue
        for w, states in ((work, work.run.states), (twin, twin.run.states)):
            w.states = {key: state for key, (_, state) in states.items()}
            w.collected = {"frame": _frame(int(w.id[1:]) + 100, 1 + int(w.id[1:]) % 3)}
            w.collected["frame"]["timestamp"] += timedelta(seconds=STEP * POINTS)
            w.piece = replace(w.piece, end=w.piece.end + timedelta(hours=4))
        later_works.append(work)
        later_alone.append(twin)
    assert _outcome(scoring.score_pieces(later_works, None, 2)) == _outcome(
        detect_pieces(later_alone, None)
    )


def test_a_small_batch_or_no_processes_stays_in_process(db: Store):
    scoring.score_pieces(_works(db, scoring.MIN_PIECES - 1), None, 2)
    assert scoring._pool is None
    scoring.score_pieces(_works(db, scoring.MIN_PIECES, prefix="e"), None, 0)
    assert scoring._pool is None


def test_workers_killed_before_their_jobs_leave_the_pieces_scored_in_process(
    db: Store, caplog: pytest.LogCaptureFixture
):
    works = _works(db, scoring.MIN_PIECES)
    alone = copy.deepcopy(works)
    scoring.score_pieces(copy.deepcopy(works), None, 2)  # the pool and its workers are up
    pool = scoring._pool
    assert pool is not None
    for pid in list(pool._processes):
        os.kill(pid, signal.SIGKILL)
    with caplog.at_level(logging.WARNING, logger="aiops.scoring"):
        results = scoring.score_pieces(works, None, 2)
    assert "scoring in-process" in caplog.text or "scored in-process" in caplog.text
    assert _outcome(results) == _outcome(detect_pieces(alone, None))
    # and the next batch gets a working pool again
    again = scoring.score_pieces(copy.deepcopy(alone), None, 2)
    assert _outcome(again) == _outcome(results)
    assert scoring._pool is not None and scoring._pool is not pool


def test_auto_processes_leaves_two_of_the_usable_cpus_and_takes_at_most_four(
    monkeypatch: pytest.MonkeyPatch,
):
    for cpus, expected in ((1, 0), (2, 0), (3, 1), (4, 2), (6, 4), (64, 4)):
        monkeypatch.setattr(os, "sched_getaffinity", lambda _pid, n=cpus: set(range(n)))
        assert scoring.auto_processes() == expected


def test_a_piece_the_pool_cannot_ship_is_scored_in_process(
    db: Store, caplog: pytest.LogCaptureFixture
):
    works = _works(db, scoring.MIN_PIECES)
    alone = copy.deepcopy(works)
    works[0].row["unpicklable"] = threading.Lock()  # cannot cross to a worker
    with caplog.at_level(logging.WARNING, logger="aiops.scoring"):
        results = scoring.score_pieces(works, None, 2)
    assert "scored in-process" in caplog.text
    assert _outcome(results) == _outcome(detect_pieces(alone, None))
