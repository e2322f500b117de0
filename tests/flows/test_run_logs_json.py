"""Flow and task run logs in JSON with the core's fields (issue 15, item 4): the formatter and
filter of deployments/logging-json.yml on a real flow run, and the file loaded by Prefect in a
fresh process as `aiops serve` / `aiops up` set it up with AIOPS_LOG_FORMAT=json."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prefect import flow, get_run_logger, task

from aiops.logsetup import JsonFormatter
from tasks._logfields import RunContextFilter

pytestmark = pytest.mark.prefect

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 1, 1, 1, tzinfo=UTC)


@task
def _collect(datasource: str, query: str, start: datetime, end: datetime) -> int:
    get_run_logger().info("collected %d samples", 42)
    logging.getLogger("aiops.sources.http").warning("retrying", extra={"url": "http://p1:9090"})
    return 42


@flow
def _tick(detector_id: str) -> int:
    get_run_logger().info("tick for %s", detector_id)
    return _collect("prometheus", "sum(rate(x[5m]))", T0, T1)


def test_run_logs_carry_detector_datasource_query_window_and_run_id():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RunContextFilter())
    loggers = [
        logging.getLogger(n)
        for n in ("prefect.flow_runs", "prefect.task_runs", "aiops.sources.http")
    ]
    for lg in loggers:
        lg.addHandler(handler)
    try:
        assert _tick("api-latency") == 42
    finally:
        for lg in loggers:
            lg.removeHandler(handler)
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    flow_line = next(r for r in records if r["message"] == "tick for api-latency")
    assert flow_line["detector"] == "api-latency" and flow_line["run_id"]
    task_line = next(r for r in records if r["message"] == "collected 42 samples")
    assert task_line["datasource"] == "prometheus" and task_line["query"] == "sum(rate(x[5m]))"
    assert task_line["window"] == f"{T0.isoformat()}/{T1.isoformat()}"
    assert task_line["run_id"] == flow_line["run_id"] and task_line["task_run_id"]
    core_line = next(r for r in records if r["logger"] == "aiops.sources.http")
    # a core log inside a task: its own fields and the run's
    assert core_line["url"] == "http://p1:9090" and core_line["run_id"] == flow_line["run_id"]
    assert core_line["datasource"] == "prometheus"


def test_prefect_loads_the_json_logging_config_as_the_cli_sets_it(tmp_path):
    code = (
        "import logging, sys\n"
        "from aiops.cli import _settings\n"
        "_settings()\n"
        "import prefect  # sets up its logging from PREFECT_LOGGING_SETTINGS_PATH\n"
        "logging.getLogger('prefect.flow_runs').warning('run says', extra={'flow_run_id': 'f-1', "
        "'detector': 'd'})\n"
        "logging.getLogger('aiops.tasks').info('core says', extra={'datasource': 'loki'})\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_LOGGING", "AIOPS_"))}
    env.update(
        AIOPS_LOG_FORMAT="json",
        AIOPS_DATA_DIR=str(tmp_path),
        PREFECT_LOGGING_TO_API_ENABLED="false",
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stderr.splitlines() if line.startswith("{")]
    run = next(r for r in lines if r["message"] == "run says")
    assert run["run_id"] == "f-1" and run["detector"] == "d" and run["level"] == "warning"
    core = next(r for r in lines if r["message"] == "core says")
    assert core["datasource"] == "loki"
    assert all(line.startswith("{") for line in out.stderr.splitlines() if line.strip()), out.stderr
