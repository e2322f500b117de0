"""Flow ``backfill``: run detectors over a historical range, idempotently and resumably.

The range is cut into windows, planned in the store, and processed chronologically per
detector with the backfill's own models (scoring is causal, so a backfill finds exactly
what live operation would have found from the same start). Each window commits its events,
its model states and its ``done`` mark in one transaction; anomalies are unique per
detector, series and timestamp, so re-running adds nothing and an interrupted backfill,
started again with the same arguments (or id), resumes where it stopped. Progress is a
Prefect progress artifact and ``Store.backfill_progress``.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from anyio import to_thread
from prefect import flow, get_run_logger
from prefect.artifacts import acreate_progress_artifact, aupdate_progress_artifact
from prefect.runtime import flow_run

from aiops.errors import AiopsError, InvalidInput
from aiops.timeutil import parse_duration
from tasks._runtime import settings, store
from tasks.backfill import commit_backfill_window, score_backfill_window
from tasks.collect import collect_metrics
from tasks.transform import transform_metrics

__all__ = ["backfill", "plan_windows", "backfill_id_for"]


def plan_windows(start: datetime, end: datetime, size_seconds: float) -> list[tuple[datetime, datetime]]:
    """``[start, end)`` cut into consecutive windows of ``size_seconds`` (the last may be shorter)."""
    out, cursor, size = [], start, timedelta(seconds=size_seconds)
    while cursor < end:
        out.append((cursor, min(end, cursor + size)))
        cursor += size
    return out


def backfill_id_for(detector_ids: list[str], start: datetime, end: datetime, window: str) -> str:
    """The same request always gets the same id, so running it again resumes it."""
    text = "|".join([",".join(sorted(detector_ids)), start.isoformat(), end.isoformat(), window])
    return "bf-" + hashlib.sha256(text.encode()).hexdigest()[:16]


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@flow(name="backfill")
async def backfill(
    detector_ids: list[str],
    start: datetime,
    end: datetime,
    window: str = "1d",
    backfill_id: str | None = None,
    max_windows: int | None = None,
) -> dict[str, Any]:
    """Score ``detector_ids`` over ``[start, end)`` in windows of ``window``.
    ``max_windows`` caps how many windows this run processes (the rest stay pending)."""
    log = get_run_logger()
    start, end = _utc(start), _utc(end)
    if end <= start:
        raise InvalidInput("end must be after start", field="end")
    if end > datetime.now(UTC):
        raise InvalidInput("a backfill covers the past: end is in the future", field="end")
    if not detector_ids:
        raise InvalidInput("give at least one detector id", field="detector_ids")
    size = parse_duration(window, field="window")
    db = store()
    detectors = [await to_thread.run_sync(db.get_detector, d) for d in dict.fromkeys(detector_ids)]
    for det in detectors:
        if not det.datasources:
            raise InvalidInput(f"detector {det.id!r} has no datasource to backfill from", field="detector_ids")
    bf_id = backfill_id or backfill_id_for([d.id for d in detectors], start, end, window)
    windows = plan_windows(start, end, size)
    planned = await to_thread.run_sync(db.plan_backfill, bf_id, [d.id for d in detectors], windows)
    progress = await to_thread.run_sync(db.backfill_progress, bf_id)
    log.info("backfill %s: %d windows per detector, %d newly planned, %d already done", bf_id, len(windows), planned, progress.done)
    artifact = await acreate_progress_artifact(
        progress=100.0 * progress.done / max(1, progress.total), key="backfill-progress", description=f"backfill {bf_id}"
    )
    config = settings()
    run_id = str(flow_run.id) if flow_run.id else None
    budget = {"left": math.inf if max_windows is None else max_windows}
    limit = asyncio.Semaphore(config.max_concurrency)

    async def one_detector(det: Any) -> dict[str, Any]:
        ds = det.datasources[0]
        step = timedelta(seconds=ds.step_seconds)
        done = anomalies = 0
        async with limit:
            pending = await to_thread.run_sync(lambda: db.next_pending_windows(bf_id, detector_id=det.id))
            for w in pending:
                if budget["left"] <= 0:
                    break
                budget["left"] -= 1
                await to_thread.run_sync(db.mark_window, bf_id, det.id, w.window_start, "running")
                try:
                    # evaluation timestamps inside [window_start, window_end), aligned to the step
                    first = datetime.fromtimestamp(math.ceil(w.window_start.timestamp() / step.total_seconds()) * step.total_seconds(), UTC)
                    last = datetime.fromtimestamp(math.ceil(w.window_end.timestamp() / step.total_seconds()) * step.total_seconds(), UTC) - step
                    if last >= first:
                        collected = await collect_metrics.with_options(retries=config.retry_attempts - 1)(
                            ds.name, ds.query, first, last, ds.step_seconds, max(config.buffer_size, 1_000_000)
                        )
                        frame = transform_metrics(collected["frame"], ds.step_seconds)
                        run = await score_backfill_window(det, bf_id, w.window_start, frame, run_id)
                    else:
                        from aiops.pipeline import DetectionRun

                        run = DetectionRun(detector_id=det.id, mode="running")
                    anomalies += await commit_backfill_window(bf_id, det, w.window_start, run)
                    done += 1
                except Exception as exc:  # the window stays retryable; later ones wait for it
                    message = exc.message if isinstance(exc, AiopsError) else f"{type(exc).__name__}: {exc}"
                    await to_thread.run_sync(lambda: db.mark_window(bf_id, det.id, w.window_start, "failed", message))
                    log.error("backfill %s, detector %s, window %s failed: %s", bf_id, det.id, w.window_start, message)
                    return {"detector": det.id, "windows": done, "anomalies": anomalies, "error": message}
                finally:
                    now_progress = await to_thread.run_sync(db.backfill_progress, bf_id)
                    await aupdate_progress_artifact(artifact_id=artifact, progress=100.0 * now_progress.done / max(1, now_progress.total))
        return {"detector": det.id, "windows": done, "anomalies": anomalies, "error": None}

    rows = await asyncio.gather(*(one_detector(d) for d in detectors))
    final = await to_thread.run_sync(db.backfill_progress, bf_id)
    log.info("backfill %s: %s", bf_id, final.model_dump())
    return {"backfill_id": bf_id, "progress": final.model_dump(), "detectors": rows,
            "anomalies": sum(r["anomalies"] for r in rows)}
