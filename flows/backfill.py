"""Flow ``backfill``: run detectors (and log jobs) over a historical range, idempotently and
resumably.

The range is cut into windows (``aiops.backfill.plan_windows``), planned in the store, and
processed in time order per detector with the backfill's own models, so they evolve as they
would have live (scoring is causal: a backfill finds what live operation would have found
from the same start). An optional training prefix (``train``) only fits. Each window is read
in pieces that fit a bounded buffer, so memory depends on the window and the number of
series, never on the length of the range. Each window commits its events (marked with the
backfill id), its model states and its ``done`` mark in one transaction; anomalies are unique
per detector, series and timestamp, so running again adds nothing, and an interrupted
backfill started again with the same arguments (or id) resumes where it stopped. Detectors
run in parallel under ``max_concurrency``.

Log jobs are analysed window by window (``log_window``, hourly by default), one report per
window under the source ``backfill:<id>:job:<name>`` with its own template miner.

Anomalous points are grouped into incidents with the backfill's own grouping state (apart
from live), so an incident spanning windows or pieces stays one. Backfilled incidents are
history, not alerts: no Prefect events unless ``emit_events``, and the WebSocket leaves them
out unless a client asks. Progress is a Prefect progress artifact.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from anyio import to_thread
from prefect import flow, get_run_logger
from prefect.artifacts import acreate_progress_artifact, acreate_table_artifact, aupdate_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.utilities.annotations import quote

from aiops.backfill import BackfillRequest, backfill_id_for, log_source, plan_windows, progress_counts, step_span
from aiops.config import LogJob
from aiops.errors import AiopsError, ConfigError, InvalidInput
from aiops.pipeline import DetectionRun, Window, next_piece
from aiops.store import Detector
from aiops.timeutil import parse_duration
from tasks._runtime import settings, store
from tasks.backfill import commit_backfill_log_window, score_backfill_piece
from tasks.collect import collect_metrics
from tasks.logs import analyze_window, load_file_lines, load_loki_lines
from tasks.publish import count_events, emit_incidents

__all__ = ["backfill", "plan_windows", "backfill_id_for", "log_source", "BACKFILL_CAPACITY"]

#: Samples read per request at most (the buffer); a window with more is read in pieces.
BACKFILL_CAPACITY = 1_000_000


class _Progress:
    """Counts windows done; updates the Prefect progress artifact at most every second."""

    def __init__(self, artifact: Any, total: int, done: int) -> None:
        self.artifact, self.total, self.done = artifact, total, done
        self._sent = -1.0
        self._at = 0.0

    @property
    def percent(self) -> float:
        return 100.0 * self.done / max(1, self.total)

    async def advance(self, n: int = 1, *, force: bool = False) -> None:
        self.done += n
        now = time.monotonic()
        if force or (self.percent != self._sent and now - self._at >= 1.0):
            self._sent, self._at = self.percent, now
            await aupdate_progress_artifact(artifact_id=self.artifact, progress=self.percent)


@flow(name="backfill")
async def backfill(
    detector_ids: list[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    window: str = "1d",
    backfill_id: str | None = None,
    max_windows: int | None = None,
    train: str | None = None,
    log_jobs: list[str] | None = None,
    log_window: str = "1h",
    emit_events: bool = False,
) -> dict[str, Any]:
    """Run ``detector_ids`` over ``[start, end)`` in windows of ``window`` (and the log jobs
    ``log_jobs`` in windows of ``log_window``). ``train`` (e.g. ``"2d"``) fits the first part
    of the range without scoring it. ``max_windows`` caps how many windows this run processes
    (the rest stay pending). ``emit_events`` also sends Prefect events for the anomalies found."""
    log = get_run_logger()
    request = BackfillRequest.check(
        detector_ids=detector_ids,
        log_jobs=log_jobs,
        start=start,
        end=end,
        window_seconds=parse_duration(window, field="window"),
        train_seconds=None if train is None else parse_duration(train, field="train"),
        log_window_seconds=parse_duration(log_window, field="log_window"),
    )
    config = settings()
    db = store(config)
    detectors = [await to_thread.run_sync(db.get_detector, d) for d in request.detector_ids]
    configured = config.datasource_configs()
    for det in detectors:
        if not det.datasources:
            raise InvalidInput(f"detector {det.id!r} has no datasource to backfill from", field="detector_ids")
        if det.datasources[0].name not in configured:
            raise ConfigError(
                f"detector {det.id!r} reads datasource {det.datasources[0].name!r}, which is not configured "
                f"(configured: {', '.join(configured) or 'none'})",
                setting="datasources",
            )
    known_jobs = {j.name: j for j in config.log_jobs}
    for name in request.log_jobs:
        if name not in known_jobs:
            raise ConfigError(f"no log job named {name!r} (configured: {', '.join(known_jobs) or 'none'})", setting="log_jobs")
    jobs = [known_jobs[n] for n in request.log_jobs]

    bf_id = backfill_id or backfill_id_for(
        list(request.detector_ids), request.start, request.end, window,
        train=train, log_jobs=list(request.log_jobs), log_window=log_window,
    )
    cuts = [request.train_until] if request.train_until else []
    windows = plan_windows(request.start, request.end, request.window_seconds, cut_at=cuts)
    log_windows = plan_windows(request.start, request.end, request.log_window_seconds) if jobs else []
    planned = 0
    if detectors:
        planned = await to_thread.run_sync(db.plan_backfill, bf_id, [d.id for d in detectors], windows)
    done_logs = {j.name: await to_thread.run_sync(db.log_report_windows, log_source(bf_id, j.name)) for j in jobs}
    def counts() -> dict[str, int]:
        return progress_counts(db, bf_id, detectors=bool(detectors), log_jobs=[j.name for j in jobs], log_windows=log_windows)

    before = await to_thread.run_sync(counts)
    log.info(
        "backfill %s over %s .. %s: %d detector(s) x %d windows (%d newly planned), %d log job(s) x %d windows; "
        "%d of %d windows already done",
        bf_id, request.start, request.end, len(detectors), len(windows), planned, len(jobs), len(log_windows),
        before["done"], before["total"],
    )
    artifact = await acreate_progress_artifact(
        progress=100.0 * before["done"] / max(1, before["total"]), key="backfill-progress", description=f"backfill {bf_id}"
    )
    progress = _Progress(artifact, before["total"], before["done"])
    run_id = str(flow_run.id) if flow_run.id else None
    budget = {"left": math.inf if max_windows is None else max_windows}
    limit = asyncio.Semaphore(config.max_concurrency)
    capacity = max(config.buffer_size, BACKFILL_CAPACITY)

    async def one_detector(det: Detector) -> dict[str, Any]:
        async with limit:
            return await _backfill_detector(det, bf_id, request, capacity, run_id, budget, progress, emit_events, config)

    async def one_job(job: LogJob) -> dict[str, Any]:
        async with limit:
            return await _backfill_logs(job, bf_id, log_windows, done_logs[job.name], run_id, budget, progress)

    results = await asyncio.gather(*(one_detector(d) for d in detectors), *(one_job(j) for j in jobs))
    rows, log_rows = list(results[: len(detectors)]), list(results[len(detectors):])
    final = await to_thread.run_sync(counts)
    await aupdate_progress_artifact(artifact_id=artifact, progress=100.0 * final["done"] / max(1, final["total"]))
    failed = [r for r in [*rows, *log_rows] if r["error"]]
    warnings = [f"detector {r['detector']}: {r['warning']}" for r in rows if r.get("warning")]
    log.info("backfill %s: %s", bf_id, final)
    for r in failed:
        log.error("backfill %s: %s stopped at a failed window: %s", bf_id, r.get("detector") or r.get("job"), r["error"])
    await acreate_table_artifact(
        key="backfill-summary",
        table=[{"detector": r["detector"], "windows": r["windows"], "samples": r["samples"],
                "incidents opened": r["incidents_opened"], "incidents resolved": r["incidents_resolved"],
                "anomalies": r["anomalies"], "error": r["error"] or "", "warning": r["warning"] or ""} for r in rows]
        + [{"log job": r["job"], "windows": r["windows"], "lines": r["lines"], "change events": r["events"],
            "error": r["error"] or ""} for r in log_rows],
        description=f"backfill {bf_id}: {final['done']}/{final['total']} windows done"
        + (f", {len(failed)} stopped at a failed window (run it again to retry)" if failed else "")
        + (f"; {len(warnings)} warning(s): samples not read" if warnings else ""),
    )
    return {
        "backfill_id": bf_id,
        "warnings": warnings,
        "progress": final,
        "detectors": rows,
        "logs": log_rows,
        "anomalies": sum(r["anomalies"] for r in rows),
        "incidents_opened": sum(r["incidents_opened"] for r in rows),
        "incidents_resolved": sum(r["incidents_resolved"] for r in rows),
    }


async def _backfill_detector(
    det: Detector,
    bf_id: str,
    request: BackfillRequest,
    capacity: int,
    run_id: str | None,
    budget: dict[str, float],
    progress: _Progress,
    emit_events: bool,
    config: Any,
) -> dict[str, Any]:
    """This detector's pending windows, oldest first; stops at the first failure (later
    windows must not run before it: the models evolve in time order).

    A pipeline one piece deep: while a piece is scored and committed, the next one is
    already being fetched, so Prometheus and the scoring overlap."""
    log = get_run_logger()
    db = store(config)
    ds = det.datasources[0]
    step = float(ds.step_seconds)
    row: dict[str, Any] = {"detector": det.id, "windows": 0, "samples": 0, "anomalies": 0,
                           "incidents_opened": 0, "incidents_resolved": 0,
                           "max_piece_samples": 0, "first_window": None, "last_window": None, "error": None,
                           "windows_without_samples": 0, "warning": None}
    stored = await to_thread.run_sync(db.load_backfill_states, bf_id, det.id)
    states: dict[str, Any] = {key: item["state"] for key, item in stored.items()}
    incident_states = await to_thread.run_sync(db.load_incident_states, det.id, bf_id)
    known = {"series": len(states)}
    collect = collect_metrics.with_options(retries=config.retry_attempts - 1, cache_policy=NO_CACHE)
    plan = _PiecePlan(db, bf_id, det.id, step, capacity, budget)

    def fetch(piece: _Piece | None) -> asyncio.Task | None:
        if piece is None or piece.span is None:
            return None
        return asyncio.create_task(collect(ds.name, ds.query, piece.span.start, piece.span.end, step, capacity))

    piece = await plan.next(known["series"])
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
                    raise AiopsError(f"{collected['dropped']} samples did not fit the buffer of {capacity}")
                known["series"] = max(known["series"], collected["series"])
                plan.empty_probes = plan.empty_probes + 1 if collected["series"] == 0 else 0
                row["samples"] += collected["samples"]
                row["max_piece_samples"] = max(row["max_piece_samples"], collected["samples"])
                if collected.get("warning"):
                    unread = True
                    row["warning"] = row["warning"] or collected["warning"]
            following = await plan.next(known["series"])
            next_fetch = fetch(following)
            mode = "training" if request.train_until and w.window_end <= request.train_until else "running"
            frame = collected["frame"] if collected is not None else None
            earlier, inserted = await score_backfill_piece(
                det, bf_id, w.window_start, quote(frame), step, quote(states), mode, run_id, quote(earlier), piece.last,
                quote(incident_states), piece.span.end if piece.span is not None else None,
            )
            for key, (_, state) in earlier.states.items():
                states[key] = state
            for key, (_, state) in earlier.incident_states.items():
                incident_states[key] = state
        except Exception as exc:  # the window stays retryable; later ones wait for it
            if next_fetch is not None:
                next_fetch.cancel()
            message = exc.message if isinstance(exc, AiopsError) else f"{type(exc).__name__}: {exc}"
            await to_thread.run_sync(lambda: db.mark_window(bf_id, det.id, w.window_start, "failed", message))
            log.error(
                "backfill %s: detector %s (datasource %s, query %r) failed at window %s: %s",
                bf_id, det.id, ds.name, ds.query, w.window_start, message,
            )
            await progress.advance(0, force=True)
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
            await progress.advance()
        piece, pending_fetch = following, next_fetch
    log.info("backfill %s: detector %s: %s", bf_id, det.id, {k: v for k, v in row.items() if k not in ("error", "warning")})
    if row["windows_without_samples"]:
        row["warning"] = (f"{row['windows_without_samples']} of {row['windows']} windows got no samples although "
                          f"the series has samples in them; first: {row['warning']}")
        log.warning("backfill %s: detector %s (datasource %s): %s", bf_id, det.id, ds.name, row["warning"])
    return row


@dataclass(frozen=True, slots=True)
class _Piece:
    window: Any  # the stored BackfillWindow
    span: Window | None  # its steps to fetch now; None when the window holds no step
    first: bool  # the window's first piece
    last: bool  # ... and its last: commit after scoring it


class _PiecePlan:
    """The pieces of a detector's pending windows, in time order: each window cut into
    pieces that fit ``capacity`` samples for the series seen so far (a short probe first
    when none is known yet). Takes windows from the store a page at a time, within budget."""

    def __init__(self, db: Any, bf_id: str, detector_id: str, step: float, capacity: int, budget: dict[str, float]) -> None:
        self.db, self.bf_id, self.detector_id = db, bf_id, detector_id
        self.step, self.capacity, self.budget = step, capacity, budget
        self._windows: list[Any] = []
        self._after: datetime | None = None
        self._current: tuple[Any, Window | None, datetime] | None = None
        self.empty_probes = 0  # probes in a row that found no series

    async def _next_window(self) -> Any | None:
        if self.budget["left"] <= 0:
            return None
        if not self._windows:
            page = await to_thread.run_sync(
                lambda: self.db.next_pending_windows(self.bf_id, detector_id=self.detector_id, limit=500)
            )
            self._windows = [w for w in page if self._after is None or w.window_start > self._after]
            if not self._windows:
                return None
        w = self._windows.pop(0)
        self._after = w.window_start
        self.budget["left"] -= 1
        return w

    async def next(self, known_series: int) -> _Piece | None:
        first = False
        if self._current is None or (self._current[1] is not None and self._current[2] > self._current[1].end):
            w = await self._next_window()
            if w is None:
                return None
            span = step_span(w.window_start, w.window_end, self.step)
            whole = Window(span[0], span[1], self.step) if span else None
            self._current = (w, whole, whole.start if whole else w.window_start)
            first = True
        w, whole, cursor = self._current
        if whole is None:
            self._current = None
            return _Piece(w, None, True, True)
        piece = next_piece(whole, cursor, known_series, self.capacity, empty_probes=self.empty_probes)
        after = piece.end + timedelta(seconds=self.step)
        self._current = (w, whole, after)
        return _Piece(w, piece, first, after > whole.end)


async def _backfill_logs(
    job: LogJob,
    bf_id: str,
    windows: list[tuple[datetime, datetime]],
    done: set[tuple[datetime, datetime]],
    run_id: str | None,
    budget: dict[str, float],
    progress: _Progress,
) -> dict[str, Any]:
    """One report per window, in time order, with the backfill's own template miner."""
    log = get_run_logger()
    db = store()
    source = log_source(bf_id, job.name)
    row: dict[str, Any] = {"job": job.name, "source": source, "windows": 0, "lines": 0, "events": 0, "error": None}
    miner_state = await to_thread.run_sync(db.load_miner_state, source)
    latest = await to_thread.run_sync(lambda: db.list_log_reports(source=source, limit=1))
    previous = latest[0].summary if latest else None
    whole_file: pd.DataFrame | None = None
    analyze = analyze_window.with_options(cache_policy=NO_CACHE)
    for w_start, w_end in windows:
        if (w_start, w_end) in done:
            continue
        if budget["left"] <= 0:
            break
        budget["left"] -= 1
        try:
            if job.selector is not None:
                loaded = await load_loki_lines.with_options(cache_policy=NO_CACHE)(job.datasource, job.selector, w_start, w_end)
                frame, truncated, reason = loaded["frame"], loaded["truncated"], loaded["reason"]
            else:
                if whole_file is None:
                    whole_file = load_file_lines(job.path)["frame"]
                stamps = whole_file["timestamp"]
                frame = whole_file[(stamps >= w_start) & (stamps < w_end)].reset_index(drop=True)
                truncated, reason = False, None
            analysed = analyze(
                frame, patterns=job.patterns, bucket=job.bucket, miner_state=miner_state, previous=previous,
                selector=job.selector, window=(w_start, w_end),
            )
            report = analysed["report"]
            report["source"] = {"name": source, "job": job.name, "truncated": truncated, "reason": reason}
            stored = await commit_backfill_log_window(source, (w_start, w_end), report, analysed["miner_state"], bf_id, run_id)
        except Exception as exc:
            message = exc.message if isinstance(exc, AiopsError) else f"{type(exc).__name__}: {exc}"
            log.error("backfill %s: log job %s failed at window %s: %s", bf_id, job.name, w_start, message)
            return {**row, "error": message}
        miner_state, previous = analysed["miner_state"], report
        row["windows"] += 1
        row["lines"] += report["total_logs"]
        row["events"] += stored["events"]
        await progress.advance()
    return row
