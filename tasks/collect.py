"""Collect samples from a configured datasource (Prefect retries on transient failures only)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import INPUTS, TASK_SOURCE

from aiops.errors import ConfigError
from aiops.promql import presence_probe, query_for_step
from aiops.sources import SINGLE_ATTEMPT, build_client, http_client
from aiops.sources.buffer import SampleBuffer
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
    buffer = SampleBuffer(capacity, name=datasource)
    prometheus = ds.type == "prometheus"
    # A step over the server's lookback delta would find no sample at most steps of a sparse
    # series: read each step's latest sample instead (aiops.promql.query_for_step).
    effective = query_for_step(query, step, ds.lookback_delta_seconds) if prometheus else query
    warning = None
    async with http_client(config, ds) as http:
        client = build_client(ds, config, http, retry=SINGLE_ATTEMPT)  # Prefect's retries back off
        fetched = await client.collect_range(effective, start.timestamp(), end.timestamp(), step, buffer)
        probe = presence_probe(query, (end - start).total_seconds() + step) if prometheus and not fetched else None
        if probe is not None and (await client.query(probe, end.timestamp())).series:
            warning = (
                f"no samples at any step of {start:%Y-%m-%d %H:%M:%S} .. {end:%H:%M:%S} although the "
                f"series has samples in that window: the query {effective!r} at step {step:g}s reads none "
                f"of them (lookback delta {ds.lookback_delta_seconds:g}s)"
            )
    frame = buffer.drain()
    label_cols = [c for c in frame.columns if c not in ("timestamp", "value")]
    series = len(frame[label_cols].drop_duplicates()) if label_cols and len(frame) else int(len(frame) > 0)
    log.info("collected %d samples of %d series from %s (%d dropped)%s", fetched, series, datasource, buffer.dropped,
             f" with {effective!r}" if effective != query else "")
    if warning:
        log.warning("%s: %s", datasource, warning)
    return {"frame": frame, "samples": fetched, "series": series, "dropped": buffer.dropped, "warning": warning}
