"""Backfill tasks: score one historical window with the backfill's own models, then commit."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from anyio import to_thread
from prefect import get_run_logger, task

from aiops.pipeline import DetectionRun
from aiops.store import Detector
from tasks._runtime import store
from tasks.detect import run_detector

__all__ = ["score_backfill_window", "commit_backfill_window"]


@task(name="score-backfill-window", task_run_name="score {detector.id} from {window_start:%Y-%m-%d %H:%M}")
async def score_backfill_window(
    detector: Detector, backfill_id: str, window_start: datetime, frame: pd.DataFrame, flow_run_id: str | None
) -> DetectionRun:
    """Score a window as live operation would have, continuing the backfill's own models
    (never the live ones: those have learned later data)."""
    stored = await to_thread.run_sync(store().load_backfill_states, backfill_id, detector.id)
    states = {key: item["state"] for key, item in stored.items()}
    run = await run_detector(detector, frame, states, mode="running", flow_run_id=flow_run_id, backfill=backfill_id)
    get_run_logger().info("backfill %s, detector %s: %s", backfill_id, detector.id, run.summary())
    return run


@task(name="commit-backfill-window")
async def commit_backfill_window(backfill_id: str, detector: Detector, window_start: datetime, run: DetectionRun) -> int:
    """Events (idempotent), the backfill's model states and the window's ``done`` together."""
    inserted = await to_thread.run_sync(
        lambda: store().complete_backfill_window(
            backfill_id, detector.id, window_start, events=run.events, states=run.states
        )
    )
    return len(inserted)
