"""Collect samples from a configured datasource (Prefect retries on transient failures only)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import INPUTS, TASK_SOURCE

from aiops.errors import ConfigError
from aiops.sources import SINGLE_ATTEMPT, build_client, http_client
from aiops.tick import collect_piece
from tasks._runtime import settings, TRANSIENT_RETRIES

__all__ = ["collect_metrics"]


@task(
    name="collect-metrics",
    **TRANSIENT_RETRIES,
    # Identical requests (explicit, closed windows) inside the cache window hit the cache.
    cache_policy=INPUTS + TASK_SOURCE,
    cache_expiration=timedelta(seconds=30),
    task_run_name="collect {datasource} [{start:%H:%M}-{end:%H:%M}]",
)
async def collect_metrics(
    datasource: str, query: str, start: datetime, end: datetime, step: float, capacity: int
) -> dict[str, Any]:
    """Range-query ``query`` over ``[start, end]`` into a bounded buffer of ``capacity`` samples.

    Returns ``{"frame", "samples", "series", "dropped", "warning"}``; ``warning`` says when no
    step got a sample although the query's series have samples in the window. One attempt
    walks every URL of the datasource (failover); Prefect's retries are the backoff between
    attempts, so the client itself does not retry here.
    """
    log = get_run_logger()
    config = settings()
    ds = config.datasource_configs().get(datasource)
    if ds is None:
        raise ConfigError(f"datasource {datasource!r} is not configured", setting="datasources")
    async with http_client(config, ds) as http:
        client = build_client(ds, config, http, retry=SINGLE_ATTEMPT)  # Prefect's retries back off
        piece = await collect_piece(client, ds, query, start, end, step, capacity)
    effective, fetched, series, warning = (
        piece["query"],
        piece["samples"],
        piece["series"],
        piece["warning"],
    )
    log.info(
        "collected %d samples of %d series from %s (%d dropped)%s",
        fetched,
        series,
        datasource,
        piece["dropped"],
        f" with {effective!r}" if effective != query else "",
    )
    if warning:
        log.warning("%s: %s", datasource, warning)
    return {k: piece[k] for k in ("frame", "samples", "series", "dropped", "warning")}
