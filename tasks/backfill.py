"""Backfill tasks: score a piece of history with the backfill's own models, commit a window,
and analyse one historical log window.

None of them caches results: a backfill reads each window once, and hashing frames for
cache keys (and writing them to result storage) would cost more than the work itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pandas as pd
from anyio import to_thread
from prefect import task
from prefect.cache_policies import NO_CACHE

from aiops.pipeline import DetectionRun
from aiops.store import Detector
from tasks._runtime import store
from tasks.detect import run_detector
from tasks.logs import change_events

__all__ = ["score_backfill_piece", "commit_backfill_window", "commit_backfill_log_window"]


@task(name="score-backfill", cache_policy=NO_CACHE, task_run_name="score {detector.id} ({mode})")
async def score_backfill_piece(
    detector: Detector,
    backfill_id: str,
    frame: pd.DataFrame,
    states: Mapping[str, Any],
    mode: str,
    flow_run_id: str | None,
) -> DetectionRun:
    """Score (or, in the training prefix, fit) a piece as live operation would have,
    continuing the backfill's own models (never the live ones: those learned later data)."""
    return await run_detector(detector, frame, states, mode=mode, flow_run_id=flow_run_id, backfill=backfill_id)


@task(name="commit-backfill-window", cache_policy=NO_CACHE, task_run_name="commit {detector.id} {window_start:%Y-%m-%d %H:%M}")
async def commit_backfill_window(backfill_id: str, detector: Detector, window_start: datetime, run: DetectionRun) -> list[Any]:
    """Events (idempotent, marked with the backfill id), the backfill's model states and the
    window's ``done`` in one transaction. Returns the events actually inserted."""
    return await to_thread.run_sync(
        lambda: store().complete_backfill_window(
            backfill_id, detector.id, window_start, events=run.events, states=run.states
        )
    )


@task(name="commit-backfill-log-window", cache_policy=NO_CACHE, task_run_name="commit {source} {window[0]:%Y-%m-%d %H:%M}")
async def commit_backfill_log_window(
    source: str,
    window: tuple[datetime, datetime],
    report: dict[str, Any],
    miner_state: dict[str, Any],
    backfill_id: str,
    flow_run_id: str | None,
) -> dict[str, Any]:
    """The window's report, the miner state and its change events in one transaction
    (nothing is written when the window already has a report)."""
    saved, inserted = await to_thread.run_sync(
        lambda: store().commit_log_window(
            source,
            window[0],
            window[1],
            report,
            report.get("templates"),
            miner_state=miner_state,
            events=change_events(source, window[1], report, flow_run_id),
            backfill_id=backfill_id,
            flow_run_id=flow_run_id,
        )
    )
    return {"report_id": saved.id, "events": len(inserted)}
