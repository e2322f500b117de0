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

The request is checked and resolved by :func:`aiops.backfill.resolve_backfill`, exactly as
``aiops backfill`` and ``POST /api/runs`` check it. With ``AIOPS_DASK_ADDRESS`` set, the
detectors' windows fan out to that Dask cluster (``prefect-dask``) in coarse pieces (one
window x a group of detectors, the task ``backfill-window``); each group's windows still run
oldest first, one at a time, and every piece commits through the same store path, so the
result, the resumability and the idempotency are those of an in-process run. Log jobs always
run in-process.

Anomalous points are grouped into incidents with the backfill's own grouping state (apart
from live), so an incident spanning windows or pieces stays one. Backfilled incidents are
history, not alerts: no Prefect events unless ``emit_events``, and the WebSocket leaves them
out unless a client asks. Progress is a Prefect progress artifact.
"""

from __future__ import annotations

import asyncio
import functools
import time
from datetime import datetime
from typing import Any

import pandas as pd
from anyio import to_thread
from prefect import flow, get_run_logger
from prefect.artifacts import (
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from aiops.backfill import (
    PendingWindows,
    ResolvedBackfill,
    WindowBudget,
    backfill_id_for,
    log_source,
    plan_windows,
    progress_counts,
    resolve_backfill,
)
from aiops.config import LogJob, Settings
from aiops.errors import AiopsError, ConfigError
from aiops.store import DetectorRecord
from tasks._runtime import settings, store
from tasks.backfill import (
    backfill_window,
    commit_backfill_log_window,
    merge_rows,
    new_detector_row,
    run_detector_windows,
)
from tasks.logs import analyze_window, load_file_lines, load_loki_lines

__all__ = ["backfill", "plan_windows", "backfill_id_for", "log_source", "BACKFILL_CAPACITY"]

#: Samples read per request at most (the buffer); a window with more is read in pieces.
BACKFILL_CAPACITY = 1_000_000

#: How long to try reaching the Dask scheduler of AIOPS_DASK_ADDRESS before giving up.
DASK_CONNECT_TIMEOUT = "10s"


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
    config = settings()
    db = store(config)
    resolved = await to_thread.run_sync(
        lambda: resolve_backfill(
            detector_ids=detector_ids,
            log_jobs=log_jobs,
            start=start,
            end=end,
            window=window,
            train=train,
            log_window=log_window,
            backfill_id=backfill_id,
            settings=config,
            get_detector=db.get_detector,
        )
    )
    bf_id, request = resolved.backfill_id, resolved.request
    detectors, jobs = list(resolved.detectors), list(resolved.log_jobs)
    windows, log_windows = resolved.windows, resolved.log_windows
    planned = 0
    if detectors:
        planned = await to_thread.run_sync(
            db.plan_backfill, bf_id, [d.id for d in detectors], windows
        )
    done_logs = {
        j.name: await to_thread.run_sync(db.log_report_windows, log_source(bf_id, j.name))
        for j in jobs
    }

    def counts() -> dict[str, int]:
        return progress_counts(
            db,
            bf_id,
            detectors=bool(detectors),
            log_jobs=[j.name for j in jobs],
            log_windows=log_windows,
        )

    before = await to_thread.run_sync(counts)
    log.info(
        "backfill %s over %s .. %s: %d detector(s) x %d windows (%d newly planned), %d log "
        "job(s) x %d windows; %d of %d windows already done%s",
        bf_id,
        request.start,
        request.end,
        len(detectors),
        len(windows),
        planned,
        len(jobs),
        len(log_windows),
        before["done"],
        before["total"],
        f"; on the Dask cluster at {config.dask_address}"
        if config.dask_address and detectors
        else "",
    )
    artifact = await acreate_progress_artifact(
        progress=100.0 * before["done"] / max(1, before["total"]),
        key="backfill-progress",
        description=f"backfill {bf_id}",
    )
    progress = _Progress(artifact, before["total"], before["done"])
    run_id = str(flow_run.id) if flow_run.id else None
    budget = WindowBudget(max_windows)
    limit = asyncio.Semaphore(config.max_concurrency)
    capacity = max(config.buffer_size, BACKFILL_CAPACITY)

    async def one_detector(det: DetectorRecord) -> dict[str, Any]:
        async with limit:
            return await run_detector_windows(
                det,
                bf_id,
                train_until=request.train_until,
                capacity=capacity,
                run_id=run_id,
                budget=budget,
                config=config,
                emit_events=emit_events,
                on_window=progress.advance,
                on_failure=lambda: progress.advance(0, force=True),
            )

    async def one_job(job: LogJob) -> dict[str, Any]:
        async with limit:
            return await _backfill_logs(
                job, bf_id, log_windows, done_logs[job.name], run_id, budget, progress
            )

    if config.dask_address and detectors:
        on_dask = _on_dask(
            config.dask_address,
            detectors,
            resolved,
            config,
            capacity,
            run_id,
            budget,
            progress,
            emit_events,
        )
        results = await asyncio.gather(on_dask, *(one_job(j) for j in jobs))
        rows, log_rows = results[0], list(results[1:])
    else:
        results = await asyncio.gather(
            *(one_detector(d) for d in detectors), *(one_job(j) for j in jobs)
        )
        rows, log_rows = list(results[: len(detectors)]), list(results[len(detectors) :])
    for row in rows:
        if row["error"] is None:
            log.info(
                "backfill %s: detector %s: %s",
                bf_id,
                row["detector"],
                {k: v for k, v in row.items() if k not in ("error", "warning")},
            )
        if row["windows_without_samples"] and row["error"] is None:
            row["warning"] = (
                f"{row['windows_without_samples']} of {row['windows']} windows got no samples "
                f"although the series has samples in them; first: {row['warning']}"
            )
            log.warning("backfill %s: detector %s: %s", bf_id, row["detector"], row["warning"])
    final = await to_thread.run_sync(counts)
    await aupdate_progress_artifact(
        artifact_id=artifact, progress=100.0 * final["done"] / max(1, final["total"])
    )
    failed = [r for r in [*rows, *log_rows] if r["error"]]
    warnings = [f"detector {r['detector']}: {r['warning']}" for r in rows if r.get("warning")]
    log.info("backfill %s: %s", bf_id, final)
    for r in failed:
        log.error(
            "backfill %s: %s stopped at a failed window: %s",
            bf_id,
            r.get("detector") or r.get("job"),
            r["error"],
        )
    await acreate_table_artifact(
        key="backfill-summary",
        table=[
            {
                "detector": r["detector"],
                "windows": r["windows"],
                "samples": r["samples"],
                "incidents opened": r["incidents_opened"],
                "incidents resolved": r["incidents_resolved"],
                "anomalies": r["anomalies"],
                "error": r["error"] or "",
                "warning": r["warning"] or "",
            }
            for r in rows
        ]
        + [
            {
                "log job": r["job"],
                "windows": r["windows"],
                "lines": r["lines"],
                "change events": r["events"],
                "error": r["error"] or "",
            }
            for r in log_rows
        ],
        description=f"backfill {bf_id}: {final['done']}/{final['total']} windows done"
        + (f", {len(failed)} stopped at a failed window (run it again to retry)" if failed else "")
        + (f"; {len(warnings)} warning(s): samples not read" if warnings else ""),
    )
    return {
        "backfill_id": bf_id,
        "runner": f"dask {config.dask_address}"
        if config.dask_address and detectors
        else "in-process",
        "warnings": warnings,
        "progress": final,
        "detectors": rows,
        "logs": log_rows,
        "anomalies": sum(r["anomalies"] for r in rows),
        "incidents_opened": sum(r["incidents_opened"] for r in rows),
        "incidents_resolved": sum(r["incidents_resolved"] for r in rows),
    }


def _dask_runner(address: str) -> Any:
    """A started ``DaskTaskRunner`` connected to the cluster at ``address`` (blocking), or a
    :class:`ConfigError` naming the setting when the scheduler cannot be reached."""
    from prefect_dask import DaskTaskRunner

    runner = DaskTaskRunner(address=address, client_kwargs={"timeout": DASK_CONNECT_TIMEOUT})
    runner.__enter__()
    try:
        _ = runner.client  # the property connects
    except Exception as exc:
        runner.__exit__(None, None, None)
        raise ConfigError(
            f"cannot reach the Dask scheduler at {address} (AIOPS_DASK_ADDRESS): "
            f"{type(exc).__name__}: {exc}",
            setting="AIOPS_DASK_ADDRESS",
        ) from None
    return runner


async def _on_dask(
    address: str,
    detectors: list[DetectorRecord],
    resolved: ResolvedBackfill,
    config: Settings,
    capacity: int,
    run_id: str | None,
    budget: WindowBudget,
    progress: _Progress,
    emit_events: bool,
) -> list[dict[str, Any]]:
    """The detectors' windows as coarse ``backfill-window`` tasks on the Dask cluster at
    ``address``: the detectors in as many groups as the cluster has worker threads (at most
    ``max_concurrency``), each group's pieces (its detectors' oldest pending window) one at a
    time, the groups side by side. A detector that fails at a window leaves its group's later
    pieces (it stays retryable)."""
    log = get_run_logger()
    db = store(config)
    runner = await to_thread.run_sync(_dask_runner, address)
    rows = {d.id: new_detector_row(d.id) for d in detectors}
    piece_task = backfill_window.with_options(retries=config.retry_attempts - 1)
    # as many groups as the cluster runs tasks at once (at most max_concurrency): more would
    # only cut the pieces smaller, and each task costs a few hundred ms of Prefect round trips
    threads = sum((await to_thread.run_sync(runner.client.nthreads)).values())
    n_groups = max(1, min(len(detectors), config.max_concurrency, threads))
    log.info(
        "backfill %s: %d detector(s) in %d group(s) on the Dask cluster at %s (%d worker threads)",
        resolved.backfill_id,
        len(detectors),
        n_groups,
        address,
        threads,
    )
    groups = [detectors[i::n_groups] for i in range(n_groups)]

    async def one_group(group: list[DetectorRecord]) -> None:
        live = {d.id: (d, PendingWindows(db, resolved.backfill_id, d.id)) for d in group}
        while live:
            nexts = {i: await to_thread.run_sync(p.peek) for i, (_, p) in live.items()}
            for i in [i for i, w in nexts.items() if w is None]:
                del live[i]
            if not live:
                return
            first = min(nexts[i].window_start for i in live)
            due = [i for i in live if nexts[i].window_start == first]
            ids = due[: budget.take(len(due))]
            if not ids:  # max_windows reached
                return
            parameters = {
                "config": config,
                "backfill_id": resolved.backfill_id,
                "detectors": [live[i][0] for i in ids],
                "detector_count": len(ids),
                "window_start": first,
                "train_until": resolved.request.train_until,
                "capacity": capacity,
                "flow_run_id": run_id,
                "emit_events": emit_events,
            }
            future = await to_thread.run_sync(
                functools.partial(runner.submit, piece_task, parameters=parameters)
            )
            try:
                out = await to_thread.run_sync(future.result)
            except (
                Exception
            ) as exc:  # the piece itself failed (a worker died...): its windows stay retryable
                message = (
                    exc.message if isinstance(exc, AiopsError) else f"{type(exc).__name__}: {exc}"
                )
                log.error(
                    "backfill %s: piece %s x %s failed on the Dask cluster: %s",
                    resolved.backfill_id,
                    first,
                    ", ".join(ids),
                    message,
                )
                for i in ids:
                    rows[i]["error"] = message
                    del live[i]
                await progress.advance(0, force=True)
                continue
            for row in out:
                merge_rows(rows[row["detector"]], row)
                if row["error"]:
                    del live[row["detector"]]
                else:
                    live[row["detector"]][1].pop()
                await progress.advance(row["windows"], force=bool(row["error"]))

    try:
        await asyncio.gather(*(one_group(g) for g in groups))
    finally:
        await to_thread.run_sync(lambda: runner.__exit__(None, None, None))
    return [rows[d.id] for d in detectors]


async def _backfill_logs(
    job: LogJob,
    bf_id: str,
    windows: list[tuple[datetime, datetime]],
    done: set[tuple[datetime, datetime]],
    run_id: str | None,
    budget: WindowBudget,
    progress: _Progress,
) -> dict[str, Any]:
    """One report per window, in time order, with the backfill's own template miner."""
    log = get_run_logger()
    db = store()
    source = log_source(bf_id, job.name)
    row: dict[str, Any] = {
        "job": job.name,
        "source": source,
        "windows": 0,
        "lines": 0,
        "events": 0,
        "error": None,
    }
    miner_state = await to_thread.run_sync(db.load_miner_state, source)
    latest = await to_thread.run_sync(lambda: db.list_log_reports(source=source, limit=1))
    previous = latest[0].summary if latest else None
    whole_file: pd.DataFrame | None = None
    analyze = analyze_window.with_options(cache_policy=NO_CACHE)
    for w_start, w_end in windows:
        if (w_start, w_end) in done:
            continue
        if not budget.take():
            break
        try:
            if job.selector is not None:
                loaded = await load_loki_lines.with_options(cache_policy=NO_CACHE)(
                    job.datasource, job.selector, w_start, w_end
                )
                frame, truncated, reason = loaded["frame"], loaded["truncated"], loaded["reason"]
            else:
                if whole_file is None:
                    whole_file = load_file_lines(job.path)["frame"]
                stamps = whole_file["timestamp"]
                frame = whole_file[(stamps >= w_start) & (stamps < w_end)].reset_index(drop=True)
                truncated, reason = False, None
            analysed = analyze(
                frame,
                patterns=job.patterns,
                bucket=job.bucket,
                miner_state=miner_state,
                previous=previous,
                selector=job.selector,
                window=(w_start, w_end),
                log_format=job.log_format,
            )
            report = analysed["report"]
            report["source"] = {
                "name": source,
                "job": job.name,
                "truncated": truncated,
                "reason": reason,
            }
            stored = await commit_backfill_log_window(
                source, (w_start, w_end), report, analysed["miner_state"], bf_id, run_id
            )
        except Exception as exc:
            message = exc.message if isinstance(exc, AiopsError) else f"{type(exc).__name__}: {exc}"
            log.error(
                "backfill %s: log job %s failed at window %s: %s", bf_id, job.name, w_start, message
            )
            return {**row, "error": message}
        miner_state, previous = analysed["miner_state"], report
        row["windows"] += 1
        row["lines"] += report["total_logs"]
        row["events"] += stored["events"]
        await progress.advance()
    return row
