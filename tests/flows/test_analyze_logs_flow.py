"""The analyze-logs flow under the Prefect harness: on files and on the Loki stand-in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aiops.errors import BadQuery
from aiops.logs import analyze
from aiops.sources.files import read_log_file
from flows.logs import analyze_logs
from tasks._runtime import store

pytestmark = pytest.mark.prefect

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "logs"
T0 = datetime(2024, 3, 4, 10, 0, tzinfo=UTC)
NS = 10**9


async def test_a_file_is_analysed_stored_and_compared_with_its_previous_run(aiops_env):
    path = str(FIXTURES / "java_service.log")
    expected = analyze(read_log_file(path)).to_dict()

    first = await analyze_logs(path=path)

    report = first["report"]
    for key in (
        "total_logs",
        "error_count",
        "anomaly_count",
        "error_types",
        "error_categories",
        "pattern_counts",
    ):
        assert report[key] == expected[key], key
    assert report["total_logs"] == 28  # 33 lines, 5 stack-trace lines joined to their events
    db = store()
    saved = db.get_log_report(first["report_id"])
    assert (
        saved.source == f"file:{path}" and saved.summary["total_logs"] == 28 and saved.flow_run_id
    )
    assert db.load_miner_state(f"file:{path}")["clusters"]
    # every template was new in the first window: that is the baseline, not a change to report
    second = await analyze_logs(path=path)
    assert [c for c in second["report"]["changes"] if c["type"] == "log.new_template"] == []
    assert [t["template_id"] for t in second["report"]["templates"]] == [
        t["template_id"] for t in report["templates"]
    ]


async def test_a_loki_window_is_paged_analysed_and_new_templates_become_events(
    fake_loki, prefect_events
):
    for i in range(120):
        fake_loki.add(
            {"app": "api", "level": "info"},
            (int(T0.timestamp()) + i) * NS,
            f"GET /orders/{1000 + i} completed in {20 + i % 7}ms",
        )
    first = await analyze_logs(
        selector='{app="api"}', start=T0, end=T0 + timedelta(hours=1), max_entries=None
    )
    assert first["report"]["total_logs"] == 120 and first["report"]["error_count"] == 0

    later = T0 + timedelta(hours=1)
    for i in range(30):
        fake_loki.add(
            {"app": "api", "level": "error"},
            (int(later.timestamp()) + i) * NS,
            f"ERROR java.net.ConnectException: Connection refused to db-{i % 3}:5432",
        )
    for i in range(60):
        fake_loki.add(
            {"app": "api", "level": "info"},
            (int(later.timestamp()) + 100 + i) * NS,
            f"GET /orders/{2000 + i} completed in 30ms",
        )
    second = await analyze_logs(
        selector='{app="api"}', start=later, end=later + timedelta(hours=1), max_entries=None
    )

    report = second["report"]
    assert report["total_logs"] == 90 and report["error_count"] == 30
    kinds = {c["type"] for c in report["changes"]}
    assert {"log.new_template", "log.new_error_type"} <= kinds
    stored = store().events_after(0, limit=100, types=["log.new_template", "log.new_error_type"])
    assert len(stored) == second["events"] > 0
    emitted = {e.event for e in prefect_events()}
    assert {"aiops.log.new_template", "aiops.log.new_error_type"} <= emitted
    # the LogQL of a template is ready to chart
    assert report["templates"][0]["logql"]["metric_query"].startswith(
        'sum(count_over_time({app="api"} |> '
    )


async def test_a_bad_selector_fails_the_run_with_lokis_message(fake_loki):
    with pytest.raises(BadQuery) as err:
        await analyze_logs(selector="app=api", start=T0, end=T0 + timedelta(minutes=5))
    assert "parse error" in err.value.message


# --------------------------------------------------------------------------- confinement


async def test_a_file_outside_the_log_roots_is_refused_before_anything_is_read(aiops_env):
    from aiops.errors import InvalidInput

    with pytest.raises(InvalidInput, match="outside the allowed log roots"):
        await analyze_logs(path="/etc/passwd")
    with pytest.raises(InvalidInput, match="outside the allowed log roots"):
        await analyze_logs(path="/proc/self/environ")
    assert store().list_log_reports(limit=10) == []


async def test_a_fifo_in_a_log_root_fails_at_once_instead_of_hanging(aiops_env):
    import os

    from aiops.errors import InvalidInput

    fifo = aiops_env / "pipe.log"
    os.mkfifo(fifo)
    with pytest.raises(InvalidInput, match="FIFO"):
        await analyze_logs(path=str(fifo))


async def test_a_backreference_pattern_is_refused_by_the_flows_parameter_model(aiops_env):
    from aiops.errors import InvalidInput

    with pytest.raises(InvalidInput, match="patterns"):
        await analyze_logs(lines=["a a"], patterns={"twice": r"(a) \1"})


# ----------------------------------------------------------------------- one transaction per window


def _two_windows(fake_loki):
    for i in range(60):
        fake_loki.add(
            {"app": "api", "level": "info"},
            (int(T0.timestamp()) + i) * NS,
            f"GET /orders/{1000 + i} completed in 20ms",
        )
    later = T0 + timedelta(hours=1)
    for i in range(20):
        fake_loki.add(
            {"app": "api", "level": "error"},
            (int(later.timestamp()) + i) * NS,
            f"ERROR java.net.ConnectException: Connection refused to db-{i % 3}:5432",
        )
    return (T0, later), (later, later + timedelta(hours=1))


async def test_a_failed_write_leaves_nothing_and_the_rerun_keeps_the_new_template_events(
    fake_loki, monkeypatch
):
    from aiops.store import Store

    first, second = _two_windows(fake_loki)
    await analyze_logs(selector='{app="api"}', start=first[0], end=first[1], max_entries=None)

    real = Store._insert_events_in
    failures = []

    def fail_once(self, s, values):
        if not failures:
            failures.append(len(values))
            raise RuntimeError("disk full")
        return real(self, s, values)

    monkeypatch.setattr(Store, "_insert_events_in", fail_once)
    with pytest.raises(RuntimeError, match="disk full"):
        await analyze_logs(selector='{app="api"}', start=second[0], end=second[1], max_entries=None)
    db = store()
    assert failures and failures[0] > 0
    assert len(db.list_log_reports(limit=10)) == 1  # the failed window left no report behind

    rerun = await analyze_logs(
        selector='{app="api"}', start=second[0], end=second[1], max_entries=None
    )
    assert rerun["events"] > 0
    kinds = [
        e.type
        for e in db.events_after(0, limit=100, types=["log.new_template", "log.new_error_type"])
    ]
    assert "log.new_template" in kinds and len(kinds) == rerun["events"]
    assert len(db.list_log_reports(limit=10)) == 2


async def test_a_rerun_of_a_stored_window_stores_nothing_twice(fake_loki):
    first, second = _two_windows(fake_loki)
    await analyze_logs(selector='{app="api"}', start=first[0], end=first[1], max_entries=None)
    once = await analyze_logs(
        selector='{app="api"}', start=second[0], end=second[1], max_entries=None
    )
    again = await analyze_logs(
        selector='{app="api"}', start=second[0], end=second[1], max_entries=None
    )

    db = store()
    assert again["report_id"] == once["report_id"] and again["events"] == 0
    assert len(db.list_log_reports(limit=10)) == 2
    assert (
        len(db.events_after(0, limit=100, types=["log.new_template", "log.new_error_type"]))
        == once["events"]
        > 0
    )
