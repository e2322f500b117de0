"""A report's changes become event rows of its source, at the window's end."""

from __future__ import annotations

from datetime import UTC, datetime

from aiops.logs import analyze, change_events, compare, from_lines


def test_each_change_becomes_one_event_row_of_the_source_at_the_window_end():
    before = analyze(from_lines(["job 1 done"] * 20))
    now = analyze(from_lines(["job 1 done"] * 20 + ["disk /dev/sda1 failed: IOError"] * 3))
    report = {"changes": compare(before, now)}
    at = datetime(2026, 1, 1, tzinfo=UTC)
    rows = change_events("web", at, report, "run-1")
    assert rows and {r["type"] for r in rows} <= {"log.new_template", "log.new_error_type"}
    for row, change in zip(rows, report["changes"], strict=True):
        key = change.get("template_id") or change.get("error_type")
        assert row["series_key"] == f"web|{key}"
        assert row["labels"] == {"source": "web"} and row["ts"] == at
        assert row["flow_run_id"] == "run-1" and row["payload"] == change


def test_a_report_without_changes_has_no_events():
    assert change_events("web", datetime(2026, 1, 1, tzinfo=UTC), {}, None) == []
