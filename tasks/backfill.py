"""Backfill tasks: score one historical window with the backfill's own models, then commit."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from anyio import to_thread
from prefect import get_run_logger, task

from aiops.pipeline import DetectionRun, run_detection
from aiops.store import Detector
from tasks._runtime import store

__all__ = ["score_backfill_window", "commit_backfill_window"]


@task(name="score-backfill-window", task_run_name="score {detector.id} from {window_start:%Y-%m-%d %H:%M}")
async def score_backfill_window(
    detector: Detector, backfill_id: str, window_start: datetime, frame: pd.DataFrame, flow_run_id: str | None
) -> DetectionRun:
    """Score a window as live operation would have, continuing the backfill's own models
    (never the live ones: those have learned later data)."""
    stored = await to_thread.run_sync(store().load_backfill_states, backfill_id, detector.id)
    ds = detector.datasources[0]
    run = await to_thread.run_sync(
        lambda: run_detection(
            detector_id=detector.id,
            kind=detector.kind,
            params=detector.params,
            threshold=detector.threshold,
            mode="running",
            frame=frame,
            states={k: v["state"] for k, v in stored.items()},
            params_hash=detector.spec_hash,
            flow_run_id=flow_run_id,
            payload={"datasource": ds.name, "query": ds.query, "backfill": backfill_id},
        )
    )
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
