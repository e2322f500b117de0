"""Backfill tasks: score a piece of history with the backfill's own models (committing the
window with its last piece), commit one historical log window, and run one window of a group
of detectors (``backfill-window``: the coarse unit a Dask cluster runs).

:func:`run_detector_windows` runs one detector's pending windows, oldest first, as tasks
(collect, then score-and-commit): the flow calls it per detector in-process, and
``backfill-window`` calls it on a Dask worker for one window of each detector of its group,
reading the models from the store (where the previous window committed them).

None of them caches results: a backfill reads each window once, and hashing frames for
cache keys (and writing them to result storage) would cost more than the work itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from anyio import to_thread
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import quote

from aiops.backfill import Piece, PiecePlan, WindowBudget
from aiops.config import Settings
from aiops.errors import AiopsError
from aiops.pipeline import DetectionRun
from aiops.store import DetectorRecord
from aiops.tick import transformed_piece
from aiops.transform import history_seconds, standardize
from tasks._runtime import TRANSIENT, TRANSIENT_RETRIES, store
from tasks.collect import collect_metrics
from tasks.detect import run_detector
from tasks.logs import commit_window
from tasks.publish import count_events, emit_incidents

__all__ = [
    "score_backfill_piece",
    "commit_backfill_log_window",
    "run_detector_windows",
    "backfill_window",
    "new_detector_row",
    "merge_rows",
]


@task(
    name="score-backfill",
    cache_policy=NO_CACHE,
    task_run_name="score {detector.id} {window_start:%Y-%m-%d %H:%M} ({mode})",
)
async def score_backfill_piece(
    detector: DetectorRecord,
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
    since: datetime | None = None,
) -> tuple[DetectionRun, list[Any]]:
    """Standardise and score (in the training prefix: fit) a piece of a window as live
    operation would have, continuing the backfill's own models (never the live ones: those
    learned later data) and the backfill's own incident states (``incident_states``; the
    piece's last step is ``until``). ``earlier`` is what the window's previous pieces found.
    On the window's last piece (``commit``), its events (idempotent, marked with the backfill
    id), its incidents, the models, the incident states and the window's ``done`` are stored
    in one transaction; returns the run so far and the events actually inserted. With transform
    steps, ``frame`` reaches back before the piece (``since``, its first step) by their history
    and only the piece's points ``[since, until]`` are scored, as the tick does."""
    run = DetectionRun(detector_id=detector.id, mode=mode)
    clean = None
    if frame is not None and len(frame):
        clean = await to_thread.run_sync(lambda: standardize(frame, step=step))
        if detector.transforms and since is not None and until is not None:
            clean = await to_thread.run_sync(
                lambda: transformed_piece(
                    clean, detector.transforms, step=step, start=since, end=until
                )
            )
    if clean is not None or (mode == "running" and until is not None and incident_states):
        run = await run_detector(
            detector,
            clean if clean is not None else pd.DataFrame(),
            states,
            mode=mode,
            flow_run_id=flow_run_id,
            incident_states=incident_states if mode == "running" else None,
            until=until,
            backfill=backfill_id,
        )
    if earlier is not None:
        run.absorb(earlier)
    inserted: list[Any] = []
    if commit:
        inserted = await to_thread.run_sync(
            lambda: store().complete_backfill_window(
                backfill_id,
                detector.id,
                window_start,
                events=run.events,
                states=run.states,
                incidents=run.incidents,
                incident_states=run.incident_states,
            )
        )
    return run, inserted


@task(
    name="commit-backfill-log-window",
    cache_policy=NO_CACHE,
    task_run_name="commit {source} {window[0]:%Y-%m-%d %H:%M}",
)
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


def new_detector_row(detector_id: str) -> dict[str, Any]:
    """A detector's row of a backfill's result, before any window."""
    return {
        "detector": detector_id,
        "windows": 0,
        "samples": 0,
        "anomalies": 0,
        "incidents_opened": 0,
        "incidents_resolved": 0,
        "max_piece_samples": 0,
        "first_window": None,
        "last_window": None,
        "error": None,
        "windows_without_samples": 0,
        "warning": None,
    }


async def run_detector_windows(
    det: DetectorRecord,
    bf_id: str,
    *,
    train_until: datetime | None,
    capacity: int,
    run_id: str | None,
    budget: WindowBudget,
    config: Settings,
    emit_events: bool = False,
    until: datetime | None = None,
    on_window: Callable[[], Awaitable[None]] | None = None,
    on_failure: Callable[[], Awaitable[None]] | None = None,
    inline: bool = False,
) -> dict[str, Any]:
    """This detector's pending windows (those starting at or before ``until`` when given),
    oldest first, continuing the backfill's models and incident states from the store;
    stops at the first failure (later windows must not run before it: the models evolve in
    time order), leaving that window ``failed`` and retryable. Returns the detector's row.

    A pipeline one piece deep: while a piece is scored and committed, the next one is
    already being fetched, so Prometheus and the scoring overlap.

    ``inline`` (inside ``backfill-window``): collect and score run as plain calls inside the
    calling task, not as task runs of their own (each would cost several Prefect API round
    trips per window), and a transient failure is raised, not recorded, so that task's
    retries (the one transient policy) run the piece again: windows already done are skipped."""
    log = get_run_logger()
    db = store(config)
    ds = det.datasources[0]
    step = float(ds.step_seconds)
    history = history_seconds(det.transforms)
    row = new_detector_row(det.id)
    stored = await to_thread.run_sync(db.load_backfill_states, bf_id, det.id)
    states: dict[str, Any] = {key: item["state"] for key, item in stored.items()}
    incident_states = await to_thread.run_sync(db.load_incident_states, det.id, bf_id)
    known = {"series": len(states)}
    collect = (
        collect_metrics.fn
        if inline
        else collect_metrics.with_options(retries=config.retry_attempts - 1, cache_policy=NO_CACHE)
    )
    score = score_backfill_piece.fn if inline else score_backfill_piece
    q = (lambda value: value) if inline else quote  # quote: Prefect need not walk frames and states
    plan = PiecePlan(db, bf_id, det.id, step, capacity, budget, until=until)

    def fetch(piece: Piece | None) -> asyncio.Task | None:
        if piece is None or piece.span is None:
            return None
        start = piece.span.start - timedelta(
            seconds=history
        )  # what the transform steps reach back to
        return asyncio.create_task(
            collect(ds.name, ds.query, start, piece.span.end, step, capacity)
        )

    piece = await to_thread.run_sync(plan.next, known["series"])
    pending_fetch = fetch(piece)
    earlier: DetectionRun | None = None
    unread = False  # a piece of the current window got no samples although its series has some
    while piece is not None:
        w = piece.window
        next_fetch: asyncio.Task | None = None
        try:
            if piece.first:
                await to_thread.run_sync(db.mark_window, bf_id, det.id, w.window_start, "running")
            collected = await pending_fetch if pending_fetch is not None else None
            if collected is not None:
                if collected["dropped"]:
                    raise AiopsError(
                        f"{collected['dropped']} samples did not fit the buffer of {capacity}"
                    )
                known["series"] = max(known["series"], collected["series"])
                plan.empty_probes = plan.empty_probes + 1 if collected["series"] == 0 else 0
                row["samples"] += collected["samples"]
                row["max_piece_samples"] = max(row["max_piece_samples"], collected["samples"])
                if collected.get("warning"):
                    unread = True
                    row["warning"] = row["warning"] or collected["warning"]
            following = await to_thread.run_sync(plan.next, known["series"])
            next_fetch = fetch(following)
            mode = "training" if train_until and w.window_end <= train_until else "running"
            frame = collected["frame"] if collected is not None else None
            earlier, inserted = await score(
                det,
                bf_id,
                w.window_start,
                q(frame),
                step,
                q(states),
                mode,
                run_id,
                q(earlier),
                piece.last,
                q(incident_states),
                piece.span.end if piece.span is not None else None,
                piece.span.start if piece.span is not None else None,
            )
            for key, (_, state) in earlier.states.items():
                states[key] = state
            for key, (_, state) in earlier.incident_states.items():
                incident_states[key] = state
        except Exception as exc:  # the window stays retryable; later ones wait for it
            if next_fetch is not None:
                next_fetch.cancel()
            if inline and isinstance(exc, TRANSIENT):
                raise  # backfill-window's retries run the piece again
            message = exc.message if isinstance(exc, AiopsError) else f"{type(exc).__name__}: {exc}"
            await to_thread.run_sync(
                db.mark_window, bf_id, det.id, w.window_start, "failed", message
            )
            log.error(
                "backfill %s: detector %s (datasource %s, query %r) failed at window %s: %s",
                bf_id,
                det.id,
                ds.name,
                ds.query,
                w.window_start,
                message,
            )
            if on_failure is not None:
                await on_failure()
            return {**row, "error": message}
        if piece.last:
            earlier = None
            if emit_events and inserted:
                emit_incidents(det, inserted)
            row["windows"] += 1
            for key, count in count_events(inserted).items():
                row[key] += count
            row["first_window"] = row["first_window"] or w.window_start.isoformat()
            row["last_window"] = w.window_start.isoformat()
            if unread:
                row["windows_without_samples"] += 1
                unread = False
            if on_window is not None:
                await on_window()
        piece, pending_fetch = following, next_fetch
    return row


def merge_rows(into: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """A detector's row over several runs of :func:`run_detector_windows` (one per window on
    Dask)."""
    for key in (
        "windows",
        "samples",
        "anomalies",
        "incidents_opened",
        "incidents_resolved",
        "windows_without_samples",
    ):
        into[key] += row[key]
    into["max_piece_samples"] = max(into["max_piece_samples"], row["max_piece_samples"])
    into["first_window"] = into["first_window"] or row["first_window"]
    into["last_window"] = row["last_window"] or into["last_window"]
    into["warning"] = into["warning"] or row["warning"]
    into["error"] = row["error"]
    return into


@task(
    name="backfill-window",
    cache_policy=NO_CACHE,
    **TRANSIENT_RETRIES,
    task_run_name="backfill {window_start:%Y-%m-%d %H:%M} x {detector_count} detector(s)",
)
async def backfill_window(
    config: Settings,
    backfill_id: str,
    detectors: list[DetectorRecord],
    detector_count: int,
    window_start: datetime,
    train_until: datetime | None,
    capacity: int,
    flow_run_id: str | None,
    emit_events: bool = False,
) -> list[dict[str, Any]]:
    """One window of each of ``detectors`` (a coarse piece of a backfill on a Dask worker):
    per detector, its window ``window_start`` is read, scored with the models the previous
    window committed and committed with its events, models and ``done`` mark in one
    transaction (:meth:`Store.complete_backfill_window`; idempotent). A window already done
    is skipped, so a piece retried (datasource outages: the transient retry policy) or run
    twice adds nothing. Returns one row per detector."""
    rows = []
    for det in detectors:
        rows.append(
            await run_detector_windows(
                det,
                backfill_id,
                train_until=train_until,
                capacity=capacity,
                run_id=flow_run_id,
                budget=WindowBudget(None),
                config=config,
                emit_events=emit_events,
                until=window_start,
                inline=True,
            )
        )
    return rows
