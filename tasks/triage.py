"""Incident triage tasks: plan (the incident, its detector's log source, the windows), compare
the windows (``aiops.triage``, pure), store the report or the error with the incident."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
from anyio import to_thread
from prefect import get_run_logger, task
from prefect.artifacts import acreate_markdown_artifact

from aiops.errors import AiopsError, InvalidInput, NotFound
from aiops.triage import (
    TriageWindow,
    compare_windows,
    render_selector,
    triage_markdown,
    triage_windows,
    window_frame,
)
from tasks._runtime import settings, store

__all__ = [
    "plan_triage",
    "triage_report",
    "save_triage",
    "fail_triage",
    "triage_artifact",
    "error_text",
]


def error_text(exc: BaseException) -> str:
    """What an operator reads on the incident and the run: the class and the message."""
    message = exc.message if isinstance(exc, AiopsError) else str(exc)
    return f"{type(exc).__name__}: {message}"


@task(name="plan-triage", task_run_name="plan triage of incident {incident_id}")
async def plan_triage(incident_id: int, flow_run_id: str | None) -> dict[str, Any]:
    """The triage of one incident: ``{"status": "started", ...}`` with the source and the
    windows; ``"done"`` when an earlier run already stored it (nothing to redo); ``"skipped"``
    when its detector has no log source (or is gone). A source that cannot be resolved (a
    label the selector needs, an unknown log job) is stored as the triage's error and raised."""
    log = get_run_logger()
    db = store()
    incident = await to_thread.run_sync(db.get_incident, incident_id)
    try:
        detector = await to_thread.run_sync(db.get_detector, incident.detector_id)
    except NotFound:
        log.info("incident %d: detector %s is gone, no triage", incident_id, incident.detector_id)
        return {
            "status": "skipped",
            "reason": f"detector {incident.detector_id!r} no longer exists",
        }
    link = detector.triage
    if link is None:
        log.info("incident %d: detector %s has no log source for triage", incident_id, detector.id)
        return {
            "status": "skipped",
            "reason": f"detector {detector.id!r} has no log source for triage",
        }
    triage, started = await to_thread.run_sync(
        lambda: db.start_triage(incident_id, source=link.describe(), flow_run_id=flow_run_id)
    )
    if not started:
        log.info("incident %d: triage already done by run %s", incident_id, triage.flow_run_id)
        return {"status": "done", "summary": triage.summary}
    try:
        plan: dict[str, Any] = {
            "status": "started",
            "incident": incident_id,
            "detector": detector.id,
            "datasource": link.datasource,
            "selector": None,
            "path": None,
            "log_format": None,
            "patterns": None,
        }
        if link.selector is not None:
            plan["selector"] = render_selector(link.selector, incident.labels)
        elif link.path is not None:
            plan["path"] = link.path
        else:
            jobs = {j.name: j for j in settings().log_jobs}
            if link.job not in jobs:
                raise InvalidInput(
                    f"detector {detector.id!r}: triage names log job {link.job!r}, which is not "
                    f"configured (configured: {', '.join(sorted(jobs)) or 'none'})",
                    field="triage.job",
                )
            job = jobs[link.job]
            plan.update(
                selector=job.selector,
                path=job.path,
                datasource=job.datasource,
                log_format=job.log_format,
                patterns=job.patterns,
            )
        window, baselines = triage_windows(
            link, incident.opened_at, incident.resolved_at, datetime.now(UTC)
        )
        plan.update(window=window, baselines=baselines, source=link.describe())
    except Exception as exc:
        error = error_text(exc)
        await to_thread.run_sync(
            lambda: db.finish_triage(incident_id, error=error, flow_run_id=flow_run_id)
        )
        raise
    log.info(
        "incident %d: triage of %s over %s - %s",
        incident_id,
        plan["source"],
        window.start,
        window.end,
    )
    return plan


@task(name="triage-report", task_run_name="compare incident {incident_id} with its baselines")
def triage_report(
    incident_id: int,
    frames: dict[str, pd.DataFrame],
    *,
    window: TriageWindow,
    baselines: list[TriageWindow],
    selector: str | None,
    patterns: dict[str, str] | None = None,
    log_format: str | None = None,
) -> dict[str, Any]:
    """The report (pure). ``frames``: per window name its lines, or ``"*"`` for a whole file
    whose lines are cut into the windows here."""
    whole = frames.get("*")

    def lines_of(w: TriageWindow) -> pd.DataFrame:
        return window_frame(whole, w) if whole is not None else frames[w.name]

    report = compare_windows(
        lines_of(window),
        [(b, lines_of(b)) for b in baselines],
        window=window,
        selector=selector,
        patterns=patterns,
        log_format=log_format,
    )
    return {"incident_id": incident_id, **report}


@task(name="save-triage", task_run_name="store triage of incident {incident_id}")
async def save_triage(incident_id: int, report: dict[str, Any], flow_run_id: str | None) -> None:
    await to_thread.run_sync(
        lambda: store().finish_triage(incident_id, report=report, flow_run_id=flow_run_id)
    )
    get_run_logger().info("incident %d: triage stored: %s", incident_id, report["summary"])


@task(name="fail-triage", task_run_name="store failed triage of incident {incident_id}")
async def fail_triage(incident_id: int, error: str, flow_run_id: str | None) -> None:
    """Leave the error on the incident's triage (the incident itself is not touched)."""
    await to_thread.run_sync(
        lambda: store().finish_triage(incident_id, error=error, flow_run_id=flow_run_id)
    )
    get_run_logger().error("incident %d: triage failed: %s", incident_id, error)


async def triage_artifact(incident_id: int, detector_id: str, report: dict[str, Any]) -> None:
    await acreate_markdown_artifact(
        key=f"incident-{incident_id}-triage",
        markdown=triage_markdown(report, title=f"Triage of incident {incident_id} ({detector_id})"),
        description=f"what changed in the logs when incident {incident_id} opened: "
        f"{report['summary']}"[:500],
    )
