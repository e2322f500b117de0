"""``/api/datasources/...``: health, collectors, queries, query builders, log analysis, and
the datasource + query that feed a detector.

Small requests call the core directly (a query; a log analysis of a short window); a larger
log analysis triggers the ``analyze-logs/default`` deployment and answers 202 with the run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial
from typing import Any

import anyio
import pandas as pd

from aiops.api.models import (
    AnalyzeResponse,
    BuiltQueryResponse,
    CollectorsResponse,
    DatasourceAttached,
    DatasourceAttachRequest,
    DatasourceRemoved,
    DatasourceRemoveQuery,
    DetectorPath,
    HealthQuery,
    HealthResponse,
    LogAnalyzeRequest,
    LokiBuilderRequest,
    LokiQueryRequest,
    PromBuilderRequest,
    PromQueryRequest,
    QueryResponse,
    RunResponse,
)
from aiops.api.detectors import check_detector_query, sampling_warnings
from aiops.api.health import adopt_shared
from aiops.api.openapi import Call, Operation
from aiops.api.runs import deployment_name
from aiops.errors import AiopsError, InvalidInput
from aiops.store import read_datasource_health
from aiops.timeutil import datetime_from_seconds

__all__ = ["OPERATIONS", "PUBLIC_PATHS"]

log = logging.getLogger(__name__)

HEALTH_PATH = "/api/datasources/health"
PUBLIC_PATHS = (HEALTH_PATH,)


# --------------------------------------------------------------------------- health, collectors


def _overall(statuses: list[str]) -> str:
    if not statuses or set(statuses) == {"unknown"}:
        return "unknown"
    if set(statuses) <= {"up", "unknown"}:
        return "up"
    if set(statuses) <= {"down", "unknown"}:
        return "down"
    return "degraded"


async def datasource_health(call: Call) -> Any:
    state = call.state
    query: HealthQuery = call.query
    clients = list(state.clients.values())
    if query.probe and clients:
        with anyio.move_on_after(state.options.probe_timeout):
            await asyncio.gather(*(c.http.check_health() for c in clients), return_exceptions=True)
    if clients:
        # what the background probes and the flows learned, when newer than this process' own
        try:
            shared = await state.db(read_datasource_health, state.store)
        except AiopsError as exc:
            log.warning("datasource health: cannot read shared observations: %s", exc)
        else:
            adopt_shared(state.clients, shared)
    reports = []
    for c in clients:
        report = c.health().to_dict()
        if report["active_url"] is None:
            # nothing served yet: the URL the next request will try first, unless it is down
            first = c.http.ordered_urls()[0]
            if c.http.health[first].status != "down":
                report["active_url"] = first
        reports.append(report)
    return {
        "status": _overall([r["status"] for r in reports]),
        "probed": query.probe,
        "datasources": reports,
    }


async def datasource_collectors(call: Call) -> Any:
    statuses = await call.state.db(call.state.store.collector_statuses)
    return {"collectors": [s.model_dump(mode="json") for s in statuses]}


# --------------------------------------------------------------------------- Prometheus


def _check_points(state: Any, start: float, end: float, step: float) -> None:
    if end < start:
        raise InvalidInput("end is before start", field="end")
    points = (end - start) / step + 1
    limit = state.options.max_points_per_series
    if points > limit:
        raise InvalidInput(
            f"the range resolves to {points:,.0f} points per series; the API allows {limit:,} "
            "(raise step or shorten the range)",
            field="step",
        )


async def _run_prometheus(state: Any, name: str, query: str, body: Any) -> dict[str, Any]:
    client = state.prometheus(name)
    if body.start is not None:
        _check_points(state, body.start, body.end, body.step)
        result = await client.query_range(query, body.start, body.end, body.step)
    else:
        result = await client.query(query, body.time)
    return {"datasource": name, **result.to_dict()}


async def prometheus_query(call: Call) -> Any:
    body: PromQueryRequest = call.body
    return await _run_prometheus(call.state, body.datasource, body.query, body)


async def prometheus_query_builder(call: Call) -> Any:
    body: PromBuilderRequest = call.body
    query = str(body.spec().build())
    if not body.execute:
        call.state.prometheus(body.datasource)  # still an error to name an unknown datasource
        return {"query": query, "result": None}
    return {
        "query": query,
        "result": await _run_prometheus(call.state, body.datasource, query, body),
    }


# --------------------------------------------------------------------------- Loki


async def _run_loki(
    state: Any, name: str, query: str, body: Any, *, log_window: bool
) -> dict[str, Any]:
    client = state.loki(name)
    start, end = body.start, body.end
    if start is None and log_window:
        end = time.time()
        start = end - 3600.0
    if start is not None:
        if body.step is not None:
            _check_points(state, start, end, body.step)
        result = await client.query_range(
            query, start, end, step=body.step, limit=body.limit, direction=body.direction
        )
    else:
        result = await client.query(query, body.time)
    out = result.to_dict()
    out.setdefault("cached", getattr(result, "cached", False))
    return {"datasource": name, **out}


async def loki_query(call: Call) -> Any:
    body: LokiQueryRequest = call.body
    return await _run_loki(call.state, body.datasource, body.query, body, log_window=False)


async def loki_query_builder(call: Call) -> Any:
    body: LokiBuilderRequest = call.body
    builder = body.spec().build()
    query = str(builder)
    if not body.execute:
        call.state.loki(body.datasource)
        return {"query": query, "result": None}
    is_log_query = body.range_function is None
    result = await _run_loki(call.state, body.datasource, query, body, log_window=is_log_query)
    return {"query": query, "result": result}


async def loki_analyze(call: Call) -> Any:
    body: LogAnalyzeRequest = call.body
    state = call.state
    bucket = f"{body.bucket:g}s"
    if body.patterns is not None:
        from aiops.logs.patterns import compile_patterns

        compile_patterns(body.patterns)  # a regex RE2 cannot run: a 400 naming it
    if body.lines is not None:
        default_time = (
            None
            if body.default_time is None
            else pd.Timestamp(body.default_time, unit="s", tz="UTC")
        )
        report = await anyio.to_thread.run_sync(
            partial(
                _analyze_lines,
                body.lines,
                body.labels,
                default_time,
                bucket,
                body.top_templates,
                body.patterns,
            )
        )
        return {"mode": "sync", "source": "lines", "lines": len(body.lines), "report": report}

    client = state.loki(body.datasource)
    end = body.end if body.end is not None else time.time()
    start = body.start if body.start is not None else end - (body.since or 3600.0)
    if end <= start:
        raise InvalidInput("end must be after start", field="end")
    window = {
        "start": datetime_from_seconds(start).isoformat(),
        "end": datetime_from_seconds(end).isoformat(),
    }
    options = state.options
    if end - start > options.analyze_sync_max_seconds:
        reason = (
            f"window of {end - start:.0f}s exceeds the synchronous limit of "
            f"{options.analyze_sync_max_seconds:.0f}s"
        )
        return await _analyze_async(state, body, window, reason)
    streams = await client.logs(
        body.selector, start, end, max_entries=options.analyze_sync_max_lines
    )
    if streams.truncated and streams.reason and "max_entries" in streams.reason:
        reason = f"more than {options.analyze_sync_max_lines} lines in the window"
        return await _analyze_async(state, body, window, reason)
    report = await anyio.to_thread.run_sync(
        partial(
            _analyze_frame,
            streams.frame,
            body.selector,
            (start, end),
            bucket,
            body.top_templates,
            body.patterns,
        )
    )
    return {
        "mode": "sync",
        "source": f"{body.datasource}: {body.selector}",
        "window": window,
        "lines": len(streams),
        "truncated": streams.truncated,
        "reason": streams.reason,
        "report": report,
    }


async def _analyze_async(
    state: Any, body: LogAnalyzeRequest, window: dict[str, str], reason: str
) -> Any:
    parameters = {
        "selector": body.selector,
        "start": window["start"],
        "end": window["end"],
        "datasource": body.datasource,
    }
    if body.patterns is not None:
        parameters["patterns"] = body.patterns
    info = await state.runs.trigger(deployment_name("analyze-logs"), parameters)
    log.info(
        "log analysis handed to Prefect (%s): run %s",
        reason,
        info.id,
        extra={"query": body.selector},
    )
    return 202, {
        "mode": "async",
        "source": f"{body.datasource}: {body.selector}",
        "window": window,
        "reason": reason,
        "run": RunResponse(**info.to_dict()).model_dump(mode="json"),
    }


def _analyze_lines(
    lines: list[str], labels: Any, default_time: Any, bucket: str, top: int, patterns: Any = None
) -> dict[str, Any]:
    from aiops.logs import analyze, from_lines

    try:
        frame = from_lines(lines, labels=labels, default_time=default_time)
        return analyze(frame, bucket=bucket, top_templates=top, patterns=patterns).to_dict()
    except InvalidInput:
        raise
    except ValueError as exc:
        raise InvalidInput(f"cannot analyse these lines: {exc}", field="lines") from None


def _analyze_frame(
    frame: Any,
    selector: str,
    window: tuple[float, float],
    bucket: str,
    top: int,
    patterns: Any = None,
) -> dict[str, Any]:
    from aiops.logs import analyze

    try:
        span = (
            pd.Timestamp(window[0], unit="s", tz="UTC"),
            pd.Timestamp(window[1], unit="s", tz="UTC"),
        )
        return analyze(
            frame,
            bucket=bucket,
            top_templates=top,
            window=span,
            selector=selector,
            patterns=patterns,
        ).to_dict()
    except InvalidInput:
        raise
    except ValueError as exc:
        raise InvalidInput(f"cannot analyse the logs: {exc}", field="selector") from None


# --------------------------------------------------------------------------- detector datasources


async def attach_datasource(call: Call) -> Any:
    state = call.state
    path: DetectorPath = call.path
    body: DatasourceAttachRequest = call.body
    check_detector_query(state.datasource_config(body.name), body.query, "query")
    stored = await state.db(state.store.set_datasource, path.id, body.model_dump())
    detector = await state.db(state.store.get_detector, path.id)
    return {
        "detector": path.id,
        "datasource": stored.model_dump(mode="json"),
        "warnings": sampling_warnings(state, detector),
    }


async def remove_datasource(call: Call) -> Any:
    state = call.state
    path: DetectorPath = call.path
    query: DatasourceRemoveQuery = call.query
    removed = await state.db(state.store.remove_datasource, path.id, query.name)
    return {"detector": path.id, "removed": removed}


_QUERY_ERRORS = (400, 413, 422, 502, 503, 504)

OPERATIONS = [
    Operation(
        "GET",
        HEALTH_PATH,
        datasource_health,
        "Health of every datasource and each of its URLs",
        "datasources",
        query=HealthQuery,
        responses={200: HealthResponse},
        errors=(422,),
        public=True,
        description="Status up/degraded/down/unknown, smoothed latency, last error, consecutive "
        "failures and the active URL, from the clients' request history; `probe=true` first "
        "probes every URL's readiness endpoint. No token needed.",
    ),
    Operation(
        "GET",
        "/api/datasources/collectors",
        datasource_collectors,
        "Collector status per detector",
        "datasources",
        responses={200: CollectorsResponse},
        errors=(503,),
    ),
    Operation(
        "POST",
        "/api/datasources/prometheus/query",
        prometheus_query,
        "Run a PromQL instant or range query",
        "datasources",
        body=PromQueryRequest,
        responses={200: QueryResponse},
        errors=_QUERY_ERRORS,
        description="Instant: {query, time?}. Range: {query, start, end, step}. The answer says "
        "whether it came from the cache (`cached`, `age_seconds`). Prometheus' own 400 (a bad "
        "query) is a 400 with its message.",
    ),
    Operation(
        "POST",
        "/api/datasources/prometheus/query-builder",
        prometheus_query_builder,
        "Build PromQL from a structured body (and run it)",
        "datasources",
        body=PromBuilderRequest,
        responses={200: BuiltQueryResponse},
        errors=_QUERY_ERRORS,
    ),
    Operation(
        "POST",
        "/api/datasources/loki/query",
        loki_query,
        "Run a LogQL query",
        "datasources",
        body=LokiQueryRequest,
        responses={200: QueryResponse},
        errors=_QUERY_ERRORS,
        description="503 when no Loki is configured (set AIOPS_LOKI_URL).",
    ),
    Operation(
        "POST",
        "/api/datasources/loki/query-builder",
        loki_query_builder,
        "Build LogQL from a structured body (and run it)",
        "datasources",
        body=LokiBuilderRequest,
        responses={200: BuiltQueryResponse},
        errors=_QUERY_ERRORS,
    ),
    Operation(
        "POST",
        "/api/datasources/loki/analyze",
        loki_analyze,
        "Analyse logs: posted lines, or a selector over a window",
        "datasources",
        body=LogAnalyzeRequest,
        responses={200: AnalyzeResponse, 202: AnalyzeResponse},
        errors=_QUERY_ERRORS + (404,),
        description="Posted lines (up to 100,000) and windows up to the synchronous limit (1 h "
        "and 50,000 lines by default) are analysed at once; larger windows trigger the "
        "`analyze-logs/default` deployment and answer 202 with the run.",
    ),
    Operation(
        "POST",
        "/api/datasources/detectors/{id}/datasources",
        attach_datasource,
        "Attach the datasource (by configured name) and query feeding a detector",
        "detectors",
        path_params=DetectorPath,
        body=DatasourceAttachRequest,
        responses={200: DatasourceAttached},
        errors=(400, 404, 422),
        description="Replaces the detector's datasource. A body with a `url` is refused (422): "
        "datasources are referenced by configured name only.",
    ),
    Operation(
        "DELETE",
        "/api/datasources/detectors/{id}/datasources",
        remove_datasource,
        "Remove the datasource feeding a detector",
        "detectors",
        path_params=DetectorPath,
        query=DatasourceRemoveQuery,
        responses={200: DatasourceRemoved},
        errors=(404, 422),
    ),
]
