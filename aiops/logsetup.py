"""Logging for the service: readable text for people, one JSON object per line for machines.

Context travels as ``extra=`` fields on log calls (``detector``, ``datasource``, ``url``,
``query``, ``window``, ``run_id``, ...); both formats print them, so an operator can tell from
the logs alone which detector, datasource and query a message is about. Flow and task run logs
get the same fields from their run's parameters when ``AIOPS_LOG_FORMAT=json``
(``deployments/logging-json.yml``: Prefect's logging config with this JSON formatter).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

__all__ = ["configure_logging", "JsonFormatter", "ContextTextFormatter"]

CONTEXT_KEYS = (
    "detector",
    "datasource",
    "url",
    "query",
    "window",
    "run_id",
    "flow_run_id",
    "series",
    "job",
)
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def _context(record: logging.LogRecord) -> dict[str, Any]:
    return {
        k: v
        for k, v in record.__dict__.items()
        if k not in _STANDARD and not k.startswith("_") and v is not None
    }


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(_context(record))
        if "run_id" not in out and "flow_run_id" in out:  # Prefect's run logger names it so
            out["run_id"] = out["flow_run_id"]
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class ContextTextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ctx = _context(record)
        if ctx:
            text += " [" + " ".join(f"{k}={v}" for k, v in ctx.items()) + "]"
        return text


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ContextTextFormatter())
    # The handler goes on the root logger so uvicorn's and Prefect's loggers share the format;
    # our own loggers keep propagating (tests capture them through the root logger).
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("aiops").setLevel(level)
