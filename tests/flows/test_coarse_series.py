"""Coarse and off-grid series (issue 12, item 9): a gauge written once an hour at :00:01, read
by detectors with a 1 h step, against Debian's real Prometheus (lookback delta 5m).

A plain selector at a 1 h step finds no sample at all (every sample is 59m59s older than the
next step). The collector reads each step's latest sample (``last_over_time(sel[1h])``), so
the backfill scores every hour; a query that still reads nothing while the series has samples
(a range shorter than the step) is a warning in the backfill summary, the collector status and
the logs, never a silent "0 anomalies".
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from aiops import localprom
from aiops.localprom import Family
from aiops.promql import read_every_sample
from aiops.sources.prometheus import PrometheusClient
from flows.backfill import backfill
from flows.metrics import detect_metrics
from tasks._runtime import store

pytestmark = [pytest.mark.prefect, pytest.mark.prometheus]

HOURS = 48
OFFSET = 1  # seconds after the hour


def value(i: int) -> float:
    return 100.0 + (i % 7) + (60.0 if i == 40 else 0.0)  # one spike at hour 40


class Hourly:
    def __init__(self, url: str, first_hour: int) -> None:
        self.url, self.first_hour = url, first_hour

    def sample_time(self, i: int) -> int:
        return self.first_hour + i * 3600 + OFFSET

    def at(self, i: int) -> datetime:  # the hour boundary just after sample i
        return datetime.fromtimestamp(self.first_hour + (i + 1) * 3600, UTC)


@pytest.fixture(scope="module")
def hourly(tmp_path_factory) -> Iterator[Hourly]:
    import time

    workdir = tmp_path_factory.mktemp("hourly-prometheus")
    last_hour = int(time.time() // 3600) * 3600 - 3600
    first_hour = last_hour - (HOURS - 1) * 3600
    points = [(first_hour + i * 3600 + OFFSET, value(i)) for i in range(HOURS)]
    om = workdir / "history.om"
    with om.open("w", encoding="utf-8") as f:
        localprom.write_openmetrics(
            [Family("aiops_hourly_batch", "gauge", [({"job": "etl"}, iter(points))])], f
        )
    localprom.load_openmetrics(om, workdir / "data")
    with localprom.run_prometheus(workdir, data_dir=workdir / "data") as running:
        yield Hourly(running.url, first_hour)


async def test_a_plain_selector_at_a_1h_step_reads_nothing_and_last_over_time_reads_every_hour(
    hourly,
):
    async with httpx.AsyncClient() as http:
        prom = PrometheusClient(http, [hourly.url])
        start, end = hourly.at(0), hourly.at(HOURS - 2)
        plain = await prom.query_range('aiops_hourly_batch{job="etl"}', start, end, "1h")
        assert plain.samples == 0  # what the detector got before
        read = await prom.query_range(
            read_every_sample('aiops_hourly_batch{job="etl"}', 3600), start, end, "1h"
        )
        (series,) = read.series
        assert series.values.tolist() == [value(i) for i in range(HOURS - 1)]
        assert series.timestamps.tolist() == [hourly.at(i).timestamp() for i in range(HOURS - 1)]


def _detector(db, det_id: str, query: str) -> None:
    db.create_detector(
        {
            "id": det_id,
            "name": det_id,
            "kind": "threshold",
            "params": {"upper": 150},
            "status": "paused",
            "datasource": {
                "name": "prometheus",
                "query": query,
                "step": 3600,
                "lookback": 6 * 3600,
            },
        }
    )


async def test_a_backfill_at_a_1h_step_scores_every_hour_of_an_off_grid_series(
    aiops_env, hourly, monkeypatch
):
    monkeypatch.setenv("AIOPS_PROMETHEUS_URL", hourly.url)
    db = store()
    _detector(db, "hourly", 'aiops_hourly_batch{job="etl"}')
    start, end = hourly.at(0), hourly.at(HOURS - 1)  # 47 hour boundaries, each after one sample

    result = await backfill(["hourly"], start, end, window="12h")

    (row,) = result["detectors"]
    assert row["samples"] == HOURS - 1 and row["error"] is None
    assert result["warnings"] == [] and row["windows_without_samples"] == 0
    assert [a.ts for a in db.list_anomalies(detector="hourly")] == [hourly.at(40)]


async def test_samples_the_query_cannot_read_are_a_warning_in_the_backfill_status_and_logs(
    aiops_env, hourly, monkeypatch, caplog
):
    """delta(x[5m]) at a 1 h step sees at most one sample per range: no value at any step,
    although the series has a sample in every window."""
    monkeypatch.setenv("AIOPS_PROMETHEUS_URL", hourly.url)
    db = store()
    _detector(db, "blind", 'delta(aiops_hourly_batch{job="etl"}[5m])')
    start, end = hourly.at(0), hourly.at(24)

    with caplog.at_level(logging.WARNING):
        result = await backfill(["blind"], start, end, window="12h")

    (row,) = result["detectors"]
    assert row["samples"] == 0 and row["windows"] == 2
    assert row["windows_without_samples"] == 2
    (warning,) = result["warnings"]
    assert warning.startswith(
        "detector blind: 2 of 2 windows got no samples although the series has samples in them"
    )
    assert any(
        "backfill" in r.getMessage() and "no samples" in r.getMessage() for r in caplog.records
    )

    db.update_detector("blind", status="running")
    tick = await detect_metrics(["blind"], now=hourly.at(HOURS - 1))
    (tick_row,) = tick["detectors"]
    assert tick_row["samples"] == 0 and "no samples at any step" in tick_row["warning"]
    status = db.collector_status("blind")
    assert status.state == "ok" and "although the series has samples" in status.last_warning
    assert status.last_warning_at is not None
