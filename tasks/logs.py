"""Log analysis tasks: load lines (Loki or file), analyse a window, store and publish."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from anyio import to_thread
from prefect import get_run_logger, task
from prefect.cache_policies import INPUTS, TASK_SOURCE
from prefect.events import emit_event

from aiops.errors import ConfigError
from aiops.logs import LogAnalyzer, TemplateMiner, change_events
from aiops.sources import SINGLE_ATTEMPT, build_loki, http_client
from aiops.sources.files import LogAccess
from aiops.timeutil import to_unix_seconds
from tasks._runtime import settings, store, TRANSIENT_RETRIES

__all__ = [
    "load_loki_lines",
    "load_file_lines",
    "analyze_window",
    "store_log_report",
    "change_events",
]


@task(
    name="load-loki-lines",
    **TRANSIENT_RETRIES,
    cache_policy=INPUTS + TASK_SOURCE,
    cache_expiration=timedelta(seconds=30),
    task_run_name="loki {selector}",
)
async def load_loki_lines(
    datasource: str, selector: str, start: datetime, end: datetime, max_entries: int | None = None
) -> dict[str, Any]:
    """Every line of ``selector`` in ``[start, end)`` (paged; says when a limit cut it)."""
    log = get_run_logger()
    config = settings()
    ds = config.datasource_configs().get(datasource)
    if ds is None or ds.type != "loki":
        raise ConfigError(
            f"no Loki datasource named {datasource!r}: set AIOPS_LOKI_URL or add it to the config "
            "file",
            setting="AIOPS_LOKI_URL",
        )
    async with http_client(config, ds) as http:
        client = build_loki(ds, config, http, retry=SINGLE_ATTEMPT)  # Prefect's retries back off
        result = await client.logs(
            selector, to_unix_seconds(start), to_unix_seconds(end), max_entries=max_entries
        )
    if result.truncated:
        log.warning("log query %s was cut: %s", selector, result.reason)
    log.info("loaded %d lines of %d streams in %d pages", len(result), result.streams, result.pages)
    return {"frame": result.frame, "truncated": result.truncated, "reason": result.reason}


@task(name="load-file-lines", task_run_name="file {path}")
def load_file_lines(path: str) -> dict[str, Any]:
    """The lines of a local file the settings allow (``AIOPS_LOG_ROOTS`` or a log job's file),
    read within ``AIOPS_LOG_MAX_BYTES`` (its tail, and says so) and
    ``AIOPS_LOG_READ_TIMEOUT_SECONDS``."""
    loaded = LogAccess.from_settings(settings()).read(path)
    if loaded.truncated:
        get_run_logger().warning("log file %s was cut: %s", path, loaded.reason)
    return {"frame": loaded.frame, "truncated": loaded.truncated, "reason": loaded.reason}


@task(name="analyze-window", cache_policy=INPUTS + TASK_SOURCE, cache_expiration=timedelta(hours=1))
def analyze_window(
    frame: pd.DataFrame,
    *,
    patterns: dict[str, str] | None,
    bucket: str,
    miner_state: dict[str, Any] | None,
    previous: dict[str, Any] | None,
    selector: str | None,
    window: tuple[datetime, datetime] | None,
    log_format: str | None = None,
) -> dict[str, Any]:
    """The report of one window (pure): ``{"report": {...}, "miner_state": {...}}``.
    ``log_format``: the log job's explicit header format (default: learned from the lines)."""
    miner = TemplateMiner.from_state(miner_state) if miner_state else TemplateMiner()
    analyzer = LogAnalyzer(
        patterns=patterns, bucket=bucket, miner=miner, selector=selector, log_format=log_format
    )
    report = analyzer.update(frame).report(previous=previous, window=window)
    return {"report": report.to_dict(), "miner_state": miner.state()}


async def commit_window(
    source: str,
    window: tuple[datetime, datetime],
    report: dict[str, Any],
    miner_state: dict[str, Any],
    flow_run_id: str | None,
    backfill_id: str | None = None,
) -> tuple[Any, list[Any]]:
    """``Store.commit_log_window`` for one analysed window (live or backfill), in a thread:
    the report, the miner state and the change events in one transaction."""
    return await to_thread.run_sync(
        lambda: store().commit_log_window(
            source,
            window[0],
            window[1],
            report,
            report.get("templates"),
            miner_state=miner_state,
            events=change_events(source, window[1], report, flow_run_id),
            backfill_id=backfill_id,
            flow_run_id=flow_run_id,
        )
    )


@task(name="store-log-report")
async def store_log_report(
    source: str,
    window: tuple[datetime, datetime],
    report: dict[str, Any],
    miner_state: dict[str, Any],
    flow_run_id: str | None,
) -> dict[str, Any]:
    """Persist the report, the miner state and the change events in one transaction (a
    failure leaves nothing half-written, so a rerun stores all of it); then emit the events.
    A window the source already has a report for is not written again (0 events)."""
    log = get_run_logger()
    saved, inserted = await commit_window(source, window, report, miner_state, flow_run_id)
    resource = {"prefect.resource.id": f"aiops.logs.{source}", "prefect.resource.name": source}
    for event in inserted[:100]:
        emit_event(
            event=f"aiops.{event.type}",
            resource=resource,
            payload={"id": event.id, **event.payload},
        )
    log.info("log report %d stored for %s: %d change events", saved.id, source, len(inserted))
    return {"report_id": saved.id, "events": len(inserted)}
