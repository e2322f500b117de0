"""Flow ``detect-metrics``: every tick, run the detectors that are due, in batches.

The run claims due detectors in batches (``AIOPS_BATCH_SIZE``, one datasource per batch) in
the store, with a lease it renews while it lives, so several runs (several workers) share
the detectors and never process the same window twice (:mod:`aiops.store.batch`). Per
batch, each detector's window (from its checkpoint to now, in pieces that fit the bounded
buffer, so a long downtime is caught up without a gap) goes through three task runs per
piece for the whole batch: ``collect-batch``, ``detect-batch`` (``training`` detectors fit,
``running`` ones score) and ``publish-batch`` (events, model states, checkpoints, collector
statuses, incidents and their grouping state of the whole batch in one transaction; only
then are the incidents opened or resolved emitted as Prefect events). A failing detector is
recorded in its collector status and the run log and does not stop the others. A table
artifact summarises the tick, one row per detector this run processed; the log says why
every other detector did not run here (not due, claimed by another run).
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import time
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from anyio import to_thread
from prefect import flow, get_run_logger
from prefect.artifacts import acreate_table_artifact
from prefect.runtime import flow_run

from aiops.config import Settings
from aiops.errors import StoreUnavailable
from aiops.flowparams import DetectMetricsParameters, validate_parameters
from aiops.store import DetectorRecord
from aiops.tick import Batch, error_message, outcome_row, plan_work
from tasks._runtime import prune_result_storage, settings, store
from tasks.batch import collect_batch, detect_batch, publish_batch, record_outcomes
from tasks.flowstats import record_tick

__all__ = ["detect_metrics"]

#: Batches a run works on at once: one collects (waits on the datasource) while another scores.
LANES = 2
#: While a tick runs: the objects alive before it are left out of garbage collection
#: (``gc.freeze``) and a young collection waits for this many new objects. With the default
#: (700), decoding and scoring 1,000 series of 1,441 points spent ~40 % of the run's CPU in
#: ~2,500 collections, each walking the whole heap of Prefect, pandas and SQLAlchemy objects.
GC_YOUNG_THRESHOLD = 50_000


@flow(name="detect-metrics", log_prints=False)
async def detect_metrics(
    detector_ids: list[str] | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """One tick of scheduled detection. ``detector_ids`` limits the tick to those detectors
    (still only when due); ``now`` pins the clock (tests, replays)."""
    log = get_run_logger()
    started, started_at = time.monotonic(), datetime.now(UTC)
    stats: dict[str, Any] = {"store_errors": 0, "collection_failed": []}  # for the flows' metrics
    given = {"detector_ids": detector_ids, "now": now}
    validate_parameters(
        DetectMetricsParameters,
        {k: v for k, v in given.items() if v is not None},
        flow="detect-metrics",
    )
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
    owner = run_id or f"local-{uuid.uuid4()}"
    holder = f"{socket.gethostname()}:{os.getpid()}"
    by_id = {d.id: d for d in due}
    remaining = sorted(by_id)
    rows: list[dict[str, Any]] = []
    elsewhere: dict[str, str] = {}  # due here, but processed by another run since the tick began
    claim_lock = asyncio.Lock()

    async def lane() -> None:
        while True:
            async with claim_lock:
                if not remaining:
                    return
                claimed = await to_thread.run_sync(
                    lambda: db.claim_detectors(
                        remaining,
                        owner,
                        now=now,
                        lease_seconds=config.claim_lease_seconds,
                        limit=config.batch_size,
                        holder=holder,
                    )
                )
                considered = set(claimed.considered)
                remaining[:] = [i for i in remaining if i not in considered]
            for det_id, old in claimed.taken_over.items():
                log.warning(
                    "detector %s: the claim of run %s (%s) lapsed at %s: taken over",
                    det_id,
                    old.owner,
                    old.holder or "?",
                    old.expires_at.isoformat() if old.expires_at else "?",
                )
            for det_id, why in claimed.not_due.items():
                elsewhere[det_id] = why
                log.info("detector %s not run here: %s", det_id, why)
            if not claimed.claimed:
                if not considered:
                    return  # the rest is held (or being claimed right now) by other runs
                continue
            groups: dict[str, list[DetectorRecord]] = defaultdict(list)
            for det_id in claimed.claimed:
                groups[by_id[det_id].datasources[0].name].append(by_id[det_id])
            for name, dets in sorted(groups.items()):
                rows.extend(await _process_batch(name, dets, now, run_id, owner, config, stats))

    heartbeat = asyncio.create_task(_renew_leases(owner, config.claim_lease_seconds))
    try:
        with _young_objects_only():
            await asyncio.gather(*(lane() for _ in range(LANES)))
    finally:
        heartbeat.cancel()
        await asyncio.gather(heartbeat, return_exceptions=True)
    held: dict[str, Any] = {}
    if remaining:
        held = await to_thread.run_sync(db.claims, remaining)
        by_owner: dict[tuple[str, str], list[str]] = defaultdict(list)
        for det_id in remaining:
            claim = held.get(det_id)
            key = (
                (claim.owner or "?", claim.holder or "?")
                if claim
                else ("another run", "being claimed")
            )
            by_owner[key].append(det_id)
        for (other, where), ids in sorted(by_owner.items()):
            log.info(
                "%d detector(s) not run here: claimed by run %s (%s): %s",
                len(ids),
                other,
                where,
                ", ".join(ids),
            )
    rows.sort(key=lambda r: r["detector"])
    failed = [r for r in rows if r["status"] == "failed"]
    summary = {
        "due": len(due),
        "ok": sum(r["status"] == "ok" for r in rows),
        "skipped": sum(r["status"] == "skipped" for r in rows),
        "failed": len(failed),
        "taken_over": sum(r["status"] == "taken-over" for r in rows),
        "anomalies": sum(r["anomalies"] for r in rows),
        "incidents_opened": sum(r["incidents_opened"] for r in rows),
        "incidents_resolved": sum(r["incidents_resolved"] for r in rows),
        "detectors": rows,
        "not_due": not_due,
        "elsewhere": {**elsewhere, **{i: f"claimed by run {c.owner}" for i, c in held.items()}},
        "store_errors": stats["store_errors"],
    }
    await acreate_table_artifact(
        key="detect-metrics-summary",
        table=rows
        or [
            {
                "detector": "-",
                "status": "nothing due",
                "reason": "; ".join(f"{k}: {v}" for k, v in not_due.items()) or "no detectors",
            }
        ],
        description=f"detect-metrics at {now:%Y-%m-%d %H:%M:%S}Z: {summary['ok']} ok, "
        f"{summary['failed']} failed, {summary['skipped']} skipped, "
        f"{len(summary['elsewhere'])} run elsewhere; incidents: "
        f"{summary['incidents_opened']} opened, {summary['incidents_resolved']} resolved "
        f"({summary['anomalies']} anomalous points)",
    )
    if summary["incidents_opened"] or summary["incidents_resolved"]:
        log.info(
            "tick: %d incident(s) opened, %d resolved, %d anomalous points",
            summary["incidents_opened"],
            summary["incidents_resolved"],
            summary["anomalies"],
        )
    await record_tick(
        summary,
        datasource_of={d.id: d.datasources[0].name for d in due},
        collection_failed=stats["collection_failed"],
        started=started,
        started_at=started_at,
        scheduled_at=flow_run.scheduled_start_time if flow_run.id else None,
    )
    return summary


_gc_ticks = 0  # ticks of this process inside _young_objects_only (tests run several at once)
_gc_saved: tuple[int, ...] = ()
_gc_lock = threading.Lock()


@contextmanager
def _young_objects_only() -> Iterator[None]:
    """Garbage collection for the objects the tick makes, not the process' whole heap (see
    ``GC_YOUNG_THRESHOLD``); the previous thresholds come back, and the frozen objects are
    collectable again, when the last tick of the process ends."""
    global _gc_ticks, _gc_saved
    with _gc_lock:
        if _gc_ticks == 0:
            _gc_saved = gc.get_threshold()
            gc.set_threshold(max(_gc_saved[0], GC_YOUNG_THRESHOLD), *_gc_saved[1:])
        _gc_ticks += 1
        gc.freeze()
    try:
        yield
    finally:
        with _gc_lock:
            _gc_ticks -= 1
            if _gc_ticks == 0:
                gc.set_threshold(*_gc_saved)
                gc.unfreeze()


async def _renew_leases(owner: str, lease_seconds: float) -> None:
    """Keep this run's claims alive while it works (a killed run's claims lapse instead)."""
    log = get_run_logger()
    db = store()
    while True:
        await asyncio.sleep(lease_seconds / 3)
        try:
            await to_thread.run_sync(db.renew_claims, owner, lease_seconds)
        except Exception as exc:  # the next renewal may succeed; a commit checks the claim anyway
            log.warning("could not renew the claims of this run: %s", error_message(exc))


async def _process_batch(
    datasource: str,
    detectors: list[DetectorRecord],
    now: datetime,
    run_id: str | None,
    owner: str,
    config: Settings,
    stats: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Every detector of one claimed batch through its window; returns their outcome rows.
    ``stats`` counts, for the flows' metrics, the store errors met and the detectors whose
    collection failed."""
    stats = stats if stats is not None else {"store_errors": 0, "collection_failed": []}
    log = get_run_logger()
    db = store(config)
    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    failed: dict[str, str] = {}
    if datasource not in config.datasource_configs():
        configured = ", ".join(config.datasource_configs())
        reason = f"datasource {datasource!r} is not configured (configured: {configured})"
        for det in detectors:
            log.error("detector %s skipped: %s", det.id, reason)
            skipped[det.id] = reason
            rows.append({**outcome_row(det), "status": "skipped", "error": reason})
        await to_thread.run_sync(record_outcomes, owner, {}, skipped, now)
        return rows
    works = []
    try:
        inputs = await to_thread.run_sync(db.load_batch, [d.id for d in detectors])
    except Exception as exc:
        message = error_message(exc)
        stats["store_errors"] += 1
        log.error("batch of %d detectors on %s failed: %s", len(detectors), datasource, message)
        for det in detectors:
            failed[det.id] = message
            rows.append({**outcome_row(det), "status": "failed", "error": message})
        await _record(log, owner, failed, {}, now, stats)
        return rows
    for det in detectors:
        planned = plan_work(det, inputs[det.id], now)
        if isinstance(planned, str):
            skipped[det.id] = planned
            rows.append({**outcome_row(det), "status": "skipped", "error": planned})
        else:
            works.append(planned)
    batch = Batch(datasource, works, now)
    publish = publish_batch.with_options(retries=config.retry_attempts - 1)
    while batch.active():
        active = batch.active()
        for work in active:
            work.next_piece(config.buffer_size)
        first = min(w.piece.start for w in active)
        last = max(w.piece.end for w in active)
        label = f"{datasource}: {batch.label()} [{first:%H:%M}-{last:%H:%M}]"
        try:
            await collect_batch(batch, label)
            await detect_batch(batch, label, run_id)
            await publish(batch, label, owner)
        except (
            Exception
        ) as exc:  # the batch's step failed as a whole: its detectors fail, the tick goes on
            message = error_message(exc)
            stats["store_errors"] += isinstance(exc, StoreUnavailable)
            log.error("batch %s failed: %s", label, message)
            for work in batch.active():
                work.fail(message)
    for work in works:
        rows.append(work.row)
        if work.row["status"] == "failed":
            failed[work.id] = work.row["error"]
            if work.failed_in == "collect":
                stats["collection_failed"].append(work.id)
    await _record(log, owner, failed, skipped, now, stats)
    return rows


async def _record(
    log: Any,
    owner: str,
    failed: dict[str, str],
    skipped: dict[str, str],
    now: datetime,
    stats: dict[str, Any],
) -> None:
    try:
        await to_thread.run_sync(record_outcomes, owner, failed, skipped, now)
    except Exception as exc:
        stats["store_errors"] += 1
        log.error(
            "could not record the outcome of %d detector(s): %s",
            len(failed) + len(skipped),
            error_message(exc),
        )
