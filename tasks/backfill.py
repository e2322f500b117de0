"""Backfill tasks: score a piece of history with the backfill's own models (committing the
window with its last piece), and commit one historical log window.

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
from aiops.transform import standardize
from tasks._runtime import store
from tasks.detect import run_detector
from tasks.logs import commit_window

__all__ = ["score_backfill_piece", "commit_backfill_log_window"]


@task(name="score-backfill", cache_policy=NO_CACHE, task_run_name="score {detector.id} {window_start:%Y-%m-%d %H:%M} ({mode})")
async def score_backfill_piece(
    detector: Detector,
    backfill_id: str,
    window_start: datetime,
    frame: pd.DataFrame | None,
    step: float,
    states: Mapping[str, Any],
    mode: str,
    flow_run_id: str | None,
    earlier: DetectionRun | None,
    commit: bool,
    incident_states: Mapping[str, Any] | None = None,
    until: datetime | None = None,
) -> tuple[DetectionRun, list[Any]]:
    """Standardise and score (in the training prefix: fit) a piece of a window as live
    operation would have, continuing the backfill's own models (never the live ones: those
    learned later data) and the backfill's own incident states (``incident_states``; the
    piece's last step is ``until``). ``earlier`` is what the window's previous pieces found.
    On the window's last piece (``commit``), its events (idempotent, marked with the backfill
    id), its incidents, the models, the incident states and the window's ``done`` are stored
    in one transaction; returns the run so far and the events actually inserted."""
    run = DetectionRun(detector_id=detector.id, mode=mode)
    clean = None
    if frame is not None and len(frame):
        clean = await to_thread.run_sync(lambda: standardize(frame, step=step))
    if clean is not None or (mode == "running" and until is not None and incident_states):
        run = await run_detector(
            detector, clean if clean is not None else pd.DataFrame(), states, mode=mode,
            flow_run_id=flow_run_id, incident_states=incident_states if mode == "running" else None,
            until=until, backfill=backfill_id,
        )
    if earlier is not None:
        run.absorb(earlier)
    inserted: list[Any] = []
    if commit:
        inserted = await to_thread.run_sync(
            lambda: store().complete_backfill_window(
                backfill_id, detector.id, window_start, events=run.events, states=run.states,
                incidents=run.incidents, incident_states=run.incident_states,
            )
        )
    return run, inserted


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
    saved, inserted = await commit_window(
        source, window, report, miner_state, flow_run_id, backfill_id=backfill_id
    )
    return {"report_id": saved.id, "events": len(inserted)}
