"""``aiops backfill`` end to end: a real Prefect server, the real Prometheus, a progress bar."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from prefect.settings import PREFECT_API_URL

from tasks._runtime import store
from tests.support.prometheus import SPIKE_INDEX

pytestmark = [pytest.mark.prefect, pytest.mark.prometheus]


def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def aiops(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    return subprocess.run(
        [sys.executable, "-m", "aiops.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def detector(aiops_env):
    db = store()
    db.create_detector(
        {
            "id": "cli-bf",
            "name": "cli-bf",
            "kind": "zscore",
            "params": {"window": 40},
            "status": "paused",
            "datasource": {
                "query": 'aiops_test_anomaly{instance="a"}',
                "step": 15,
                "lookback": 3600,
            },
        }
    )
    return db


def test_backfill_command_runs_the_flow_with_a_progress_bar(detector, prometheus):
    h = prometheus.history
    args = [
        "backfill",
        "--detector",
        "cli-bf",
        "--start",
        iso(h.start),
        "--end",
        iso(h.end + h.step),
        "--window",
        "2h",
    ]
    done = aiops(*args)
    assert done.returncode == 0, done.stderr
    assert "100% 4/4" in done.stderr  # the bar's last state
    assert "cli-bf" in done.stdout and "4/4 windows done, incidents: 1 opened" in done.stdout
    assert "(1 new anomalous points)" in done.stdout
    [anomaly] = detector.list_anomalies(detector="cli-bf")
    assert (
        anomaly.ts == datetime.fromtimestamp(h.timestamp(SPIKE_INDEX), UTC) and anomaly.backfill_id
    )

    again = aiops(*args, "--json")
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)
    assert result["backfill_id"] == anomaly.backfill_id and result["anomalies"] == 0
    assert result["detectors"][0]["windows"] == 0  # everything was done: nothing redone


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            [
                "--detector",
                "cli-bf",
                "--start",
                "2024-01-02T00:00:00Z",
                "--end",
                "2024-01-01T00:00:00Z",
            ],
            "end must be after start",
        ),
        (
            ["--detector", "nope", "--start", "now-2h", "--end", "now-1h"],
            "detector 'nope' not found",
        ),
        (["--detector", "cli-bf", "--start", "now-2h", "--end", "now+1h"], "end is in the future"),
        (["--detector", "cli-bf", "--start", "yesterday-ish"], "--start"),
        (["--detector", "cli-bf", "--start", "now-2h", "--window", "fortnight"], "--window"),
        (
            ["--detector", "cli-bf", "--start", "now-2h", "--train", "3h"],
            "training prefix covers the whole range",
        ),
        (["--start", "now-2h"], "at least one detector"),
    ],
)
def test_backfill_command_refuses_bad_input_in_one_line(detector, args, message):
    done = aiops("backfill", *args, timeout=120)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
