"""Flow ``analyze-logs``: batch analysis of a window of logs from Loki, a file or posted lines.

Scheduled per configured log job (``log_jobs`` in the config file; ``deployments/serve.py``
makes one deployment each) and run on demand (the API, the Prefect UI). The template miner's
state persists per source between runs, so template ids are stable and the report can say
what is new since the previous window. The report is stored and left as Prefect artifacts.

With ``incident`` it is an incident's triage (``aiops.triage``), started by the Prefect
Automation :data:`TRIAGE_TRIGGER` when an incident opens on a detector linked to logs: the
detector's log source over the incident's window and its baselines, the report stored with
the incident (``GET /api/incidents/{id}/triage``) and left as a markdown artifact.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from anyio import to_thread
from prefect import flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
from prefect.events import DeploymentEventTrigger
from prefect.runtime import flow_run

from aiops.errors import InvalidInput
from aiops.flowparams import AnalyzeLogsParameters, check_analyze_logs_source, validate_parameters
from aiops.logs import from_lines
from aiops.timeutil import datetime_from_seconds, parse_seconds, utc_datetime
from tasks._runtime import settings, store
from tasks.flowstats import log_job_failed, log_job_finished
from tasks.logs import analyze_window, load_file_lines, load_loki_lines, store_log_report
from tasks.triage import (
    error_text,
    fail_triage,
    plan_triage,
    save_triage,
    triage_artifact,
    triage_report,
)

__all__ = ["analyze_logs", "source_name", "TRIAGE_TRIGGER", "triage_trigger"]

#: The name of the Prefect Automation that starts an incident's triage.
TRIAGE_TRIGGER = "aiops-incident-triage"


def triage_trigger() -> DeploymentEventTrigger:
    """On ``aiops.incident.opened`` of a detector linked to logs (its resource carries
    ``aiops.triage: linked``), run this deployment with the incident's id. The same trigger is
    declared in ``prefect.yaml``; ``aiops serve`` and ``prefect deploy`` (re)create it with the
    deployment, replacing the one they made before (idempotent)."""
    return DeploymentEventTrigger(
        name=TRIAGE_TRIGGER,
        description="Log triage of an incident that opened on a detector linked to logs",
        enabled=True,
        expect={"aiops.incident.opened"},
        match={"prefect.resource.id": "aiops.detector.*", "aiops.triage": "linked"},
        parameters={"incident": "{{ event.payload.incident_id }}"},
    )


def source_name(*, job: str | None, selector: str | None, path: str | None, datasource: str) -> str:
    """The key a source's reports and miner state are stored under."""
    if job:
        return f"job:{job}"
    if selector:
        return f"loki:{datasource}:{selector}"
    if path:
        return f"file:{path}"
    return "lines"


@flow(name="analyze-logs", on_completion=[log_job_finished], on_failure=[log_job_failed])
async def analyze_logs(
    selector: str | None = None,
    path: str | None = None,
    lines: list[str] | None = None,
    job: str | None = None,
    incident: int | None = None,
    datasource: str = "loki",
    since: str = "1h",
    start: datetime | None = None,
    end: datetime | None = None,
    bucket: str = "1h",
    patterns: dict[str, str] | None = None,
    max_entries: int | None = 1_000_000,
) -> dict[str, Any]:
    """Analyse one window. Give exactly one of ``selector`` (LogQL stream selector, read from
    ``datasource``), ``path`` (a local file), ``lines`` (posted lines), ``job`` (a
    configured log job, which names its own source) or ``incident`` (an incident's triage:
    its detector's log source, windows from the incident)."""
    log = get_run_logger()
    params = validate_parameters(
        AnalyzeLogsParameters,
        {
            k: v
            for k, v in dict(
                selector=selector,
                path=path,
                lines=lines,
                job=job,
                incident=incident,
                datasource=datasource,
                since=since,
                start=start,
                end=end,
                bucket=bucket,
                patterns=patterns,
                max_entries=max_entries,
            ).items()
            if v is not None or k == "max_entries"
        },
        flow="analyze-logs",
    )
    config = settings()
    check_analyze_logs_source(params, config)
    if incident is not None:
        return await _triage(incident, max_entries)
    log_format = None
    since_s = parse_seconds(since, field="since")
    if job is not None:
        spec = {j.name: j for j in config.log_jobs}[job]
        selector, path, datasource, bucket = spec.selector, spec.path, spec.datasource, spec.bucket
        log_format = spec.log_format
        patterns = spec.patterns if patterns is None else patterns
        since_s = spec.window_seconds
        if (
            start is None and end is None
        ):  # scheduled: windows on the job's grid, so a rerun is the same window
            now_s = time.time()
            end = datetime_from_seconds(now_s - now_s % spec.interval_seconds)
    source = source_name(job=job, selector=selector, path=path, datasource=datasource)
    end = end or datetime.now(UTC)
    start = start or end - timedelta(seconds=since_s)
    if end <= start:
        raise InvalidInput("end must be after start", field="end")

    if selector is not None:
        loaded = await load_loki_lines(datasource, selector, start, end, max_entries)
    elif path is not None:
        loaded = load_file_lines(path)
    else:
        loaded = {"frame": from_lines(lines, default_time=end), "truncated": False, "reason": None}
    frame = loaded["frame"]
    if path is not None and len(frame):
        start, end = (
            frame["timestamp"].min().to_pydatetime(),
            frame["timestamp"].max().to_pydatetime(),
        )

    db = store()
    previous_reports = await to_thread.run_sync(lambda: db.list_log_reports(source=source, limit=1))
    if previous_reports and _same_window(previous_reports[0], start, end):
        done = previous_reports[0]  # a rerun of a stored window: nothing new to write or emit
        log.info(
            "%s: the window %s - %s is already stored (report %d)", source, start, end, done.id
        )
        return {"report_id": done.id, "events": 0, "source": source, "report": done.summary}
    miner_state = await to_thread.run_sync(db.load_miner_state, source)
    previous = previous_reports[0].summary if previous_reports else None
    analysed = analyze_window(
        frame,
        patterns=patterns,
        bucket=bucket,
        miner_state=miner_state,
        previous=previous,
        selector=selector,
        window=(start, end),
        log_format=log_format,
    )
    report = analysed["report"]
    report["source"] = {
        "name": source,
        "truncated": loaded["truncated"],
        "reason": loaded["reason"],
    }
    run_id = str(flow_run.id) if flow_run.id else None
    stored = await store_log_report(source, (start, end), report, analysed["miner_state"], run_id)
    await _artifacts(source, report)
    log.info(
        "%s: %d lines, %d errors, %d anomalies, %d templates, %d changes",
        source,
        report["total_logs"],
        report["error_count"],
        report["anomaly_count"],
        len(report["templates"]),
        len(report.get("changes") or []),
    )
    return {
        "report_id": stored["report_id"],
        "events": stored["events"],
        "source": source,
        "report": report,
    }


async def _triage(incident_id: int, max_entries: int | None) -> dict[str, Any]:
    """An incident's triage: plan, read every window, compare, store (or store the error and
    fail the run; the incident itself is never touched)."""
    log = get_run_logger()
    run_id = str(flow_run.id) if flow_run.id else None
    plan = await plan_triage(incident_id, run_id)
    if plan["status"] != "started":
        return {
            "incident": incident_id,
            "triage": plan["status"],
            "summary": plan.get("summary") or plan.get("reason"),
        }
    window, baselines = plan["window"], plan["baselines"]
    try:
        frames = {}
        if plan["selector"] is not None:
            for w in [window, *baselines]:
                loaded = await load_loki_lines(
                    plan["datasource"], plan["selector"], w.start, w.end, max_entries
                )
                frames[w.name] = loaded["frame"]
        else:
            frames["*"] = load_file_lines(plan["path"])["frame"]
        report = triage_report(
            incident_id,
            frames,
            window=window,
            baselines=baselines,
            selector=plan["selector"],
            patterns=plan["patterns"],
            log_format=plan["log_format"],
        )
    except Exception as exc:
        await fail_triage(incident_id, f"reading {plan['source']}: {error_text(exc)}", run_id)
        raise
    report["source"] = plan["source"]
    await save_triage(incident_id, report, run_id)
    await triage_artifact(incident_id, plan["detector"], report)
    log.info("incident %d: %s", incident_id, report["summary"])
    return {"incident": incident_id, "triage": "done", "summary": report["summary"]}


def _same_window(report: Any, start: datetime, end: datetime) -> bool:
    same_start = utc_datetime(report.window_start) == utc_datetime(start)
    return same_start and utc_datetime(report.window_end) == utc_datetime(end)


async def _artifacts(source: str, report: dict[str, Any]) -> None:
    errors = sorted(report["error_types"].items(), key=lambda kv: -kv[1])[:10]
    md = [
        f"# Log analysis: `{source}`",
        "",
        f"- lines: **{report['total_logs']}**, errors: **{report['error_count']}** "
        f"({report['error_rate']:.2%}), anomalies: **{report['anomaly_count']}** "
        f"({report['anomaly_rate']:.2%})",
        f"- templates: {len(report['templates'])}; error categories: "
        + (", ".join(f"{k} {v}" for k, v in report["error_categories"].items()) or "none"),
        "",
        "## What changed since the previous window",
    ]
    changes = report.get("changes") or []
    md += [
        f"- `{c['type']}` {c.get('template') or c.get('error_type') or ''} ({c.get('count')})"
        for c in changes[:20]
    ]
    if not changes:
        md.append("- nothing new")
    md += ["", "## Top error types"] + [f"- `{k}`: {v}" for k, v in errors]
    await acreate_markdown_artifact(
        key="analyze-logs-summary", markdown="\n".join(md), description=f"log analysis of {source}"
    )
    rows = [
        {"template_id": t["template_id"], "count": t["count"], "template": t["template"][:200]}
        for t in report["templates"][:25]
    ] or [{"template_id": "-", "count": 0, "template": "no lines"}]
    await acreate_table_artifact(
        key="analyze-logs-templates", table=rows, description=f"top templates of {source}"
    )
