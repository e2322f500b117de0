"""The flows' own metrics written to the store (:mod:`aiops.flowstats`), where the API's
``/metrics`` reads them whichever process or machine ran the flow.

Writing them never fails a flow: a store that refuses them is logged (and, when it is back,
the next run's ``aiops_flow_store_errors_total`` counts what the run met).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from anyio import to_thread

from aiops.flowstats import MetricUpdate, log_job_updates, tick_updates
from aiops.tick import error_message
from tasks._runtime import store

__all__ = ["record_tick", "record_metrics", "log_job_finished", "log_job_failed"]

log = logging.getLogger(__name__)


def record_metrics(updates: Iterable[MetricUpdate]) -> bool:
    """Add ``updates`` to the store; False (logged) when the store refused them."""
    try:
        store().record_flow_metrics(list(updates))
        return True
    except Exception as exc:  # the flow's own work is done; its metrics must not undo that
        log.warning("could not record the flow's metrics: %s", error_message(exc))
        return False


async def record_tick(
    summary: Mapping[str, Any],
    *,
    datasource_of: Mapping[str, str],
    collection_failed: Iterable[str],
    started: float,
    started_at: datetime,
    scheduled_at: datetime | None,
) -> bool:
    """A detect-metrics run's outcome as metrics; ``started`` is ``time.monotonic()`` at its
    start, ``scheduled_at`` when Prefect scheduled it (the lag is the difference)."""
    lag = (started_at - scheduled_at).total_seconds() if scheduled_at is not None else None
    updates = tick_updates(
        summary,
        datasource_of=datasource_of,
        collection_failed=collection_failed,
        duration_seconds=time.monotonic() - started,
        lag_seconds=lag,
        finished_at=time.time(),
    )
    return await to_thread.run_sync(record_metrics, updates)


def _job_of(flow_run: Any) -> str:
    params = getattr(flow_run, "parameters", None) or {}
    if params.get("job"):
        return str(params["job"])
    return "triage" if params.get("incident") is not None else "ad-hoc"


def log_job_finished(flow: Any, flow_run: Any, state: Any) -> None:
    """analyze-logs ``on_completion`` hook."""
    record_metrics(log_job_updates(_job_of(flow_run), failed=False))


def log_job_failed(flow: Any, flow_run: Any, state: Any) -> None:
    """analyze-logs ``on_failure`` hook."""
    record_metrics(log_job_updates(_job_of(flow_run), failed=True))
