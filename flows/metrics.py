"""Flow ``detect-metrics``: every tick, run the detectors that are due.

For each due detector: collect from its checkpoint to now (in pieces that fit the bounded
buffer, so a long downtime is caught up without a gap), transform, then ``training``
detectors fit and ``running`` detectors score; the store commits events, model states,
checkpoint, collector status, incidents and their grouping state together, and only then are
the incidents opened or resolved emitted as Prefect events. A failing detector is recorded
in its collector status and the run log and does not stop the others. A table artifact
summarises the tick (incidents opened and resolved per detector).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from anyio import to_thread
from prefect import flow, get_run_logger
from prefect.artifacts import acreate_table_artifact
from prefect.runtime import flow_run

from aiops.errors import AiopsError
from aiops.flowparams import DetectMetricsParameters, validate_parameters
from aiops.pipeline import collection_window, next_piece
from aiops.store import Detector
from tasks._runtime import prune_result_storage, settings, store
from tasks.collect import collect_metrics
from tasks.detect import detect_anomalies
from tasks.publish import publish_detection
from tasks.transform import transform_metrics

__all__ = ["detect_metrics"]


@flow(name="detect-metrics", log_prints=False)
async def detect_metrics(detector_ids: list[str] | None = None, now: datetime | None = None) -> dict[str, Any]:
    """One tick of scheduled detection. ``detector_ids`` limits the tick to those detectors
    (still only when due); ``now`` pins the clock (tests, replays)."""
    log = get_run_logger()
    given = {"detector_ids": detector_ids, "now": now}
    validate_parameters(DetectMetricsParameters, {k: v for k, v in given.items() if v is not None}, flow="detect-metrics")
    config = settings()
    db = store(config)
    now = now or datetime.now(UTC)
    pruned = await to_thread.run_sync(prune_result_storage)
    if pruned:
        log.info("pruned %d expired cached task results", pruned)
    promoted = await to_thread.run_sync(db.promote_trained, now)
    for det in promoted:
        log.info("detector %s finished its training window: now running", det.id)
    due, not_due = await to_thread.run_sync(db.due_detectors, now)
    if detector_ids is not None:
        wanted = set(detector_ids)
        due = [d for d in due if d.id in wanted]
        not_due = {k: v for k, v in not_due.items() if k in wanted}
    for det_id, reason in sorted(not_due.items()):
        log.info("detector %s not run: %s", det_id, reason)
    run_id = str(flow_run.id) if flow_run.id else None
    limit = asyncio.Semaphore(config.max_concurrency)

    async def guarded(det: Detector) -> dict[str, Any]:
        async with limit:
            return await _process(det, now, run_id, config)

    rows = await asyncio.gather(*(guarded(d) for d in due))
    failed = [r for r in rows if r["status"] == "failed"]
    summary = {
        "due": len(due),
        "ok": sum(r["status"] == "ok" for r in rows),
        "skipped": sum(r["status"] == "skipped" for r in rows),
        "failed": len(failed),
        "anomalies": sum(r["anomalies"] for r in rows),
        "incidents_opened": sum(r["incidents_opened"] for r in rows),
        "incidents_resolved": sum(r["incidents_resolved"] for r in rows),
        "detectors": rows,
        "not_due": not_due,
    }
    await acreate_table_artifact(
        key="detect-metrics-summary",
        table=rows or [{"detector": "-", "status": "nothing due", "reason": "; ".join(f"{k}: {v}" for k, v in not_due.items()) or "no detectors"}],
        description=f"detect-metrics at {now:%Y-%m-%d %H:%M:%S}Z: {summary['ok']} ok, {summary['failed']} failed, "
        f"{summary['skipped']} skipped; incidents: {summary['incidents_opened']} opened, "
        f"{summary['incidents_resolved']} resolved ({summary['anomalies']} anomalous points)",
    )
    if summary["incidents_opened"] or summary["incidents_resolved"]:
        log.info(
            "tick: %d incident(s) opened, %d resolved, %d anomalous points",
            summary["incidents_opened"], summary["incidents_resolved"], summary["anomalies"],
        )
    return summary


async def _process(det: Detector, now: datetime, run_id: str | None, config: Any) -> dict[str, Any]:
    log = get_run_logger()
    db = store(config)
    row: dict[str, Any] = {"detector": det.id, "mode": det.status, "status": "ok", "window": "", "series": 0,
                           "samples": 0, "dropped": 0, "incidents_opened": 0, "incidents_resolved": 0,
                           "anomalies": 0, "error": "", "warning": ""}
    ds = det.datasources[0]
    context = f"detector={det.id} datasource={ds.name} query={ds.query!r}"
    if ds.name not in config.datasource_configs():
        reason = f"datasource {ds.name!r} is not configured (configured: {', '.join(config.datasource_configs())})"
        await to_thread.run_sync(db.record_skip, det.id, reason, now)
        log.error("detector %s skipped: %s", det.id, reason)
        return {**row, "status": "skipped", "error": reason}
    try:
        checkpoint = await to_thread.run_sync(db.get_checkpoint, det.id)
        window = collection_window(
            step_seconds=ds.step_seconds, lookback_seconds=ds.lookback_seconds, checkpoint=checkpoint, now=now
        )
        if window is None:
            reason = "no complete step since the checkpoint"
            await to_thread.run_sync(db.record_skip, det.id, reason, now)
            return {**row, "status": "skipped", "error": reason}
        row["window"] = f"{window.start:%Y-%m-%d %H:%M:%S} .. {window.end:%H:%M:%S}"
        known_series = len(await to_thread.run_sync(db.state_info, det.id))
        cursor, empty = window.start, 0
        while cursor <= window.end:
            piece = next_piece(window, cursor, known_series, config.buffer_size, empty_probes=empty)
            cursor = piece.end + timedelta(seconds=window.step)
            collected = await collect_metrics.with_options(retries=config.retry_attempts - 1)(
                ds.name, ds.query, piece.start, piece.end, ds.step_seconds, config.buffer_size
            )
            frame = transform_metrics(collected["frame"], ds.step_seconds)
            run = await detect_anomalies(det, frame, run_id, until=piece.end)
            known_series = max(known_series, collected["series"])
            empty = empty + 1 if collected["series"] == 0 else 0
            row["series"] = max(row["series"], run.series)
            row["samples"] += collected["samples"]
            row["dropped"] += collected["dropped"]
            if collected.get("warning"):  # samples exist but the query read none of them
                row["warning"] = collected["warning"]
                log.warning("detector %s (%s): %s", det.id, context, collected["warning"])
            stored = await publish_detection(
                det,
                run,
                piece.end,
                {"samples": row["samples"], "series": known_series, "dropped": row["dropped"],
                 "buffered": len(collected["frame"]), "at": now, "warning": collected.get("warning")},
            )
            for key, count in stored.items():
                row[key] += count
        return row
    except Exception as exc:  # one detector's failure must not stop the others
        message = exc.message if isinstance(exc, AiopsError) else f"{type(exc).__name__}: {exc}"
        log.error("detector %s failed (%s): %s", det.id, context, message)
        try:
            await to_thread.run_sync(lambda: db.record_collection(det.id, False, error=message, at=now))
        except AiopsError as inner:
            log.error("could not record the failure of detector %s: %s", det.id, inner)
        return {**row, "status": "failed", "error": message}
