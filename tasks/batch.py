"""The detect-metrics tick's tasks, one task run per step per batch of detectors (not per
detector): collect a batch's pieces, score them, commit them in one transaction.

Per-detector outcomes stay visible: each task logs per detector, a detector's failure is
its own (the others go on), and the flow's table artifact has one row per detector.

Retries: a batch's queries go through the datasource client with the shared retry policy
(:func:`aiops.sources.retry_policy`: transient errors only, exponential backoff with jitter,
bounded), per query, so a transient failure of one detector's query retries that query, not
the batch. The commit has Prefect retries on a transient store error (the transaction is
all-or-nothing, and a piece already committed is refused by its checkpoint, never doubled).
Nothing here is result-cached: each tick asks for new, explicit windows (the checkpoints
moved), and a detector's identical queries within one batch are answered by the client's
cache (explicit past times only).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from anyio import to_thread
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from aiops.errors import ConfigError
from aiops.sources import build_client, http_client
from aiops.store.batch import BatchResult
from aiops.scoring import auto_processes, score_pieces
from aiops.tick import Batch, collect_pieces, error_message
from tasks._runtime import TRANSIENT_RETRIES, settings, store
from tasks.publish import count_events, emit_incidents

__all__ = ["collect_batch", "detect_batch", "publish_batch"]


@task(name="collect-batch", cache_policy=NO_CACHE, task_run_name="collect {label}")
async def collect_batch(batch: Batch, label: str) -> int:
    """Collect the current piece of every active detector of ``batch`` (sets
    ``work.collected``, or fails the detector). Returns the samples fetched."""
    log = get_run_logger()
    config = settings()
    ds = config.datasource_configs().get(batch.datasource)
    if ds is None:
        raise ConfigError(
            f"datasource {batch.datasource!r} is not configured", setting="datasources"
        )
    works = batch.active()
    async with http_client(config, ds) as http:
        client = build_client(ds, config, http)
        results = await collect_pieces(
            client, ds, works, config.buffer_size, config.max_concurrency
        )
    total = 0
    for work in works:
        result = results[work.id]
        if isinstance(result, BaseException):
            message = error_message(result)
            log.error("detector %s failed (%s): %s", work.id, work.context, message)
            work.fail(message, "collect")
            continue
        work.collected = result
        total += result["samples"]
        if result.get("warning"):  # samples exist but the query read none of them
            log.warning("detector %s (%s): %s", work.id, work.context, result["warning"])
    log.info("collected %d samples for %d detectors from %s", total, len(works), batch.datasource)
    return total


@task(name="detect-batch", cache_policy=NO_CACHE, task_run_name="detect {label}")
async def detect_batch(batch: Batch, label: str, flow_run_id: str | None) -> int:
    """Fit (``training``) or score (``running``) every collected piece of ``batch`` in one step
    (sets ``work.run``, or fails the detector). Returns the points scored."""
    log = get_run_logger()
    works = [w for w in batch.active() if w.collected is not None]
    config = settings()
    processes = config.score_processes if config.score_processes is not None else auto_processes()
    runs = await to_thread.run_sync(score_pieces, works, flow_run_id, processes)
    scored = 0
    for work in works:
        run = runs[work.id]
        if isinstance(run, BaseException):
            message = error_message(run)
            log.error("detector %s failed (%s): %s", work.id, work.context, message)
            work.fail(message)
            continue
        scored += run.scored
    log.info("%d detectors: %d points scored", len(works), scored)
    return scored


@task(
    name="publish-batch",
    **TRANSIENT_RETRIES,
    cache_policy=NO_CACHE,
    task_run_name="publish {label}",
)
async def publish_batch(batch: Batch, label: str, owner: str) -> dict[str, int]:
    """Commit the batch's pieces in one transaction (events, incidents, states, checkpoints,
    collector statuses; the claims of finished detectors released), then emit the incident
    events actually inserted. A detector whose claim was lost (another run took it over)
    stops here, its piece unwritten. Returns what was stored, summed."""
    log = get_run_logger()
    works = [w for w in batch.active() if w.run is not None]
    commits = [w.commit(batch.now) for w in works]
    finished = [w.id for w in works if w.last_piece]
    result: BatchResult = await to_thread.run_sync(
        lambda: store().commit_batch(owner, commits, release=finished)
    )
    totals = {"anomalies": 0, "incidents_opened": 0, "incidents_resolved": 0}
    for work in works:
        if work.id in result.refused:
            log.warning(
                "detector %s stopped: %s (the run that holds it now processes its window)",
                work.id,
                result.refused[work.id],
            )
            work.row.update(status="taken-over", error=result.refused[work.id])
            work.done = True
            continue
        inserted = result.inserted.get(work.id, [])
        emit_incidents(work.detector, inserted)
        counts = count_events(inserted)
        work.committed_piece(counts)
        for key, count in counts.items():
            totals[key] += count
        _log_incidents(log, work.id, inserted)
    done = [w for w in works if w.done and w.row["status"] == "ok"]
    if done:  # one line for the batch (each detector's figures are in the tick's artifact)
        log.info(
            "%d detector(s) done: %s",
            len(done),
            ", ".join(
                f"{w.id} ({w.detector.status}, {w.row['series']} series, "
                f"{w.row['samples']} samples, {w.row['anomalies']} anomalies)"
                for w in done
            ),
        )
    return totals


#: Incidents listed in one detector's log line; the rest are counted (the store has them all).
LOGGED_INCIDENTS = 20


def _log_incidents(log: Any, detector_id: str, inserted: list[Any]) -> None:
    """One warning line per detector for the incidents it opened and one info line for those
    it resolved (a log record costs ~1.5 ms through Prefect's handlers: one per incident made
    the publish step of 1,000 series cost seconds)."""
    opened = [e for e in inserted if e.type == "incident.opened"]
    resolved = [e for e in inserted if e.type == "incident.resolved"]
    if opened:
        log.warning(
            "detector %s: %d incident(s) opened: %s",
            detector_id,
            len(opened),
            _listed(
                opened,
                lambda e: (
                    f"{e.payload.get('incident_id')} on {e.series_key or '(no labels)'} "
                    f"at {e.ts.isoformat()} (severity {e.severity}, peak score {e.score})"
                ),
            ),
        )
    if resolved:
        log.info(
            "detector %s: %d incident(s) resolved: %s",
            detector_id,
            len(resolved),
            _listed(
                resolved,
                lambda e: (
                    f"{e.payload.get('incident_id')} on {e.series_key or '(no labels)'} "
                    f"at {e.ts.isoformat()} ({e.payload.get('points')} points)"
                ),
            ),
        )


def _listed(events: list[Any], describe: Any) -> str:
    text = "; ".join(describe(e) for e in events[:LOGGED_INCIDENTS])
    more = len(events) - LOGGED_INCIDENTS
    return f"{text}; and {more} more" if more > 0 else text


def record_outcomes(
    owner: str, failed: dict[str, str], skipped: dict[str, str], at: datetime
) -> None:
    """Collector statuses of failed and skipped detectors, and their claims released."""
    store().record_batch_outcomes(owner, failed=failed, skipped=skipped, at=at)
