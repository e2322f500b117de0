"""Run context as log fields: a logging filter that gives every record logged inside a flow or
task run the same fields as the core's logs (``detector``, ``datasource``, ``query``,
``window``, ``job``, ``run_id``), read from the run's parameters, so the JSON logs of
``AIOPS_LOG_FORMAT=json`` say which detector, datasource, query and window a line is about
without parsing the message. Fields given on the call (``extra=``) win.

Used by ``deployments/logging-json.yml`` (Prefect's logging config in JSON mode).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

__all__ = ["RunContextFilter", "run_fields"]

# run parameter -> log field
_FIELDS = {
    "detector": "detector",
    "detector_id": "detector",
    "detector_ids": "detectors",
    "datasource": "datasource",
    "query": "query",
    "selector": "query",
    "job": "job",
    "path": "path",
    "backfill_id": "backfill_id",
}


def _plain(value: Any) -> Any:
    if isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if (
        isinstance(value, list | tuple)
        and all(isinstance(v, str) for v in value)
        and len(value) <= 50
    ):
        return list(value)
    return None


def run_fields(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """The log fields a run's parameters give (only small plain values: never a frame)."""
    out: dict[str, Any] = {}
    if not parameters:
        return out
    for name, field in _FIELDS.items():
        value = _plain(parameters.get(name))
        if value is not None and field not in out:
            out[field] = value
    start, end = parameters.get("start"), parameters.get("end")
    if isinstance(start, datetime) and isinstance(end, datetime):
        out["window"] = f"{start.isoformat()}/{end.isoformat()}"
    return out


class RunContextFilter(logging.Filter):
    """Adds the current flow/task run's fields to records that lack them; never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            from prefect.context import FlowRunContext, TaskRunContext

            fields: dict[str, Any] = {}
            flow_ctx = FlowRunContext.get()
            if flow_ctx is not None:
                fields.update(run_fields(flow_ctx.parameters))
                if flow_ctx.flow_run is not None:
                    fields["run_id"] = str(flow_ctx.flow_run.id)
            task_ctx = TaskRunContext.get()
            if task_ctx is not None:
                fields.update(run_fields(task_ctx.parameters))
                fields["task_run_id"] = str(task_ctx.task_run.id)
                if task_ctx.task_run.flow_run_id is not None:
                    fields.setdefault("run_id", str(task_ctx.task_run.flow_run_id))
        except Exception:  # a log line must never fail for its context
            return True
        for key, value in fields.items():
            if getattr(record, key, None) is None:
                setattr(record, key, value)
        return True
