"""The report: keys, invariants, change detection, and batch == one-line semantics."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiops.errors import InvalidInput
from aiops.logs.analysis import line_template_ids
from aiops.logs import (
    LogAnalyzer,
    LogReport,
    TemplateMiner,
    analyze,
    compare,
    extract_durations,
    extract_http_statuses,
    extract_sizes,
    from_lines,
)

REQUIRED = {
    "total_logs",
    "error_count",
    "anomaly_count",
    "error_rate",
    "anomaly_rate",
    "pattern_counts",
    "error_types",
    "error_categories",
    "performance",
    "templates",
    "time_distribution",
}


def _frame(lines: list[str]) -> pd.DataFrame:
    return from_lines(lines, default_time="2024-01-15T10:00:00Z")


def test_report_has_the_required_keys_and_is_json() -> None:
    report = analyze(_frame(["2024-01-15T10:00:00Z ERROR boom took 5ms"]))
    data = report.to_dict()
    assert set(data) >= REQUIRED
    assert {"levels", "coverage", "window", "rates", "template_counts", "changes"} <= set(data)
    json.dumps(data)
    assert LogReport.from_dict(data) == report


def test_empty_frame_gives_an_empty_report() -> None:
    data = analyze(_frame([])).to_dict()
    assert data["total_logs"] == 0 and data["error_rate"] == 0.0 and data["templates"] == []


def test_selector_adds_logql_per_template() -> None:
    report = analyze(_frame(["2024-01-15T10:00:00Z job 7 done"]), selector='{app="x"}')
    logql = report.templates[0]["logql"]
    assert logql["pattern_filter"] == '{app="x"} |> "<_> job <_> done"'
    assert logql["metric_query"].startswith('sum(count_over_time({app="x"} |> ')


def test_window_sets_rates_and_lists_empty_buckets() -> None:
    lines = [f"2024-01-15T10:{m:02d}:00Z tick" for m in range(0, 60, 10)]
    report = analyze(
        _frame(lines),
        bucket="30min",
        window=("2024-01-15T09:00:00Z", "2024-01-15T11:00:00Z"),
    )
    assert report.window["seconds"] == 7200
    assert report.rates["lines_per_second"] == pytest.approx(6 / 7200, rel=1e-4)
    assert list(report.time_distribution.values()) == [0, 0, 3, 3, 0]


@pytest.mark.parametrize(
    ("bucket", "seconds"),
    [("1d", 86_400), ("15m", 900), ("1h30m", 5_400), (60, 60), ("30min", 1_800), ("2h", 7_200)],
)
def test_a_bucket_is_read_as_our_durations_are_or_as_a_pandas_frequency(bucket, seconds) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "1d" through pandas warns that "d" goes away
        assert LogAnalyzer(bucket=bucket)._bucket_ns == seconds * 10**9
    for bad in ("-1h", "0s", 0):
        with pytest.raises(InvalidInput, match="bucket must be positive"):
            LogAnalyzer(bucket=bad)


def test_bad_arguments_are_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="bucket"):
        analyze(_frame(["x"]), bucket="soon")
    with pytest.raises(InvalidInput, match="window"):
        analyze(_frame(["x"]), window=("2024-01-02", "2024-01-01"))
    with pytest.raises(InvalidInput, match="column"):
        analyze(pd.DataFrame({"text": ["x"]}))
    with pytest.raises(InvalidInput, match="selector"):
        analyze(_frame(["x"]), selector="app=x")


def test_numeric_json_levels_are_read_per_line() -> None:
    lines = [
        '{"level":30,"time":1705312800000,"msg":"x"}',
        '{"level":50,"time":1705312801000,"msg":"x"}',
    ]
    report = analyze(_frame(lines))
    assert report.levels == {"info": 1, "error": 1}
    assert report.error_count == 1


def test_status_decides_the_level_of_access_lines() -> None:
    lines = [
        '1.1.1.1 - - [15/Jan/2024:10:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "x"',
        '1.1.1.1 - - [15/Jan/2024:10:00:00 +0000] "GET / HTTP/1.1" 404 1 "-" "x"',
        '1.1.1.1 - - [15/Jan/2024:10:00:00 +0000] "GET / HTTP/1.1" 503 1 "-" "x"',
    ]
    report = analyze(_frame(lines))
    assert report.levels == {"unknown": 1, "warn": 1, "error": 1}
    assert report.error_types == {"http_4xx": 1, "http_404": 1, "http_503": 1, "http_5xx": 1}


def _window(lines: list[str], start: str) -> pd.DataFrame:
    return from_lines(lines, default_time=start)


def test_compare_finds_new_templates_rate_jumps_and_new_error_types() -> None:
    miner = TemplateMiner()
    before = analyze(
        _window(
            ["user 1 logged in"] * 10 + ["cache refreshed 3 entries"] * 5, "2024-01-15T10:00:00Z"
        ),
        miner=miner,
    )
    after = analyze(
        _window(
            ["user 1 logged in"] * 10
            + ["cache refreshed 3 entries"] * 40
            + ["ERROR db down: java.sql.SQLTransientConnectionException: timeout"] * 2,
            "2024-01-15T11:00:00Z",
        ),
        miner=miner,
        previous=before,
    )
    kinds = {(e["type"], e.get("template") or e.get("error_type")) for e in after.changes}
    assert ("log.rate_jump", "cache refreshed <NUM> entries") in kinds
    assert (
        "log.new_template",
        "ERROR db down: java.sql.SQLTransientConnectionException: timeout",
    ) in kinds
    assert ("log.new_error_type", "java.sql.SQLTransientConnectionException") in kinds
    assert not any(
        e["template"] == "user <NUM> logged in" for e in after.changes if "template" in e
    )
    jump = next(e for e in after.changes if e["type"] == "log.rate_jump")
    assert (jump["count"], jump["previous_count"], jump["ratio"], jump["severity"]) == (
        40,
        5,
        8.0,
        "info",
    )
    new = next(e for e in after.changes if e["type"] == "log.new_template")
    assert new["severity"] == "warning" and new["previous_count"] == 0
    assert compare(before, after) == [
        {k: v for k, v in e.items()} for e in compare(before.to_dict(), after.to_dict())
    ]


def test_compare_with_a_miner_state_reports_only_new_templates() -> None:
    miner = TemplateMiner()
    miner.add_many(["user 1 logged in"] * 3)
    state = miner.state()
    current = analyze(_frame(["user 2 logged in", "disk 9 failed"] * 20), miner=miner)
    events = compare(state, current)
    assert [e["type"] for e in events] == ["log.new_template"]
    assert events[0]["template"] == "disk <NUM> failed"


def test_compare_thresholds_are_configurable() -> None:
    a = analyze(_window(["tick 1"] * 10, "2024-01-15T10:00:00Z"))
    b = analyze(_window(["tick 2"] * 25, "2024-01-15T11:00:00Z"))
    assert compare(a, b) == []  # 2.5x < 3x
    events = compare(a, b, ratio=2.0)
    assert [e["type"] for e in events] == ["log.rate_jump"]
    assert compare(a, b, ratio=2.0, min_count=30) == []
    with pytest.raises(InvalidInput):
        compare({"nothing": 1}, b)


def test_chunking_does_not_change_the_report() -> None:
    lines = [
        f"2024-01-15T10:{i % 60:02d}:00Z {'ERROR' if i % 7 == 0 else 'INFO'} "
        f"job {i} took {i % 97}ms "
        f"size={i % 13}KB status={500 + i % 5 if i % 11 == 0 else 200} user=u{i % 3}"
        for i in range(3000)
    ]
    frame = _frame(lines)
    whole = analyze(frame).to_dict()
    chunked = LogAnalyzer(chunk_lines=1024)
    for start in range(0, len(frame), 700):
        chunked.update(frame.iloc[start : start + 700])
    assert chunked.report().to_dict() == whole


def test_templates_that_merge_in_a_later_chunk_are_one_row_of_the_report() -> None:
    # each word first appears in its own chunk; the fifth makes the word a variable
    words = ["alpha", "beta", "gamma", "delta", "epsilon"]
    lines = [
        f"2024-01-15T10:00:{i % 60:02d}Z INFO cache miss for key {w} in region eu took {i}ms"
        for w in words
        for i in range(1100)
    ]
    frame = _frame(lines)
    chunked = LogAnalyzer(chunk_lines=1024).update(frame).report().to_dict()
    (row,) = chunked["templates"]
    assert row["count"] == len(lines)
    assert "key <*> in region eu" in row["template"]
    assert chunked["performance"]["durations_ms"]["by_template"][0]["count"] == len(lines)
    assert set(line_template_ids(frame, chunk_lines=1024)) == {row["template_id"]}
    assert analyze(frame).to_dict()["templates"][0]["template_id"] == row["template_id"]


WORDS = st.sampled_from(
    [
        "took",
        "250ms",
        "1.5s",
        "duration=3s",
        "size=2MB",
        "status=503",
        'HTTP/1.1"',
        "404",
        "1m2.5s",
        "request_time=0.25",
        "bytes=77",
        "x",
        "ERROR",
        "deadbeef1234cafe",
        "10.0.0.1",
        "in",
        "35",
        "ms",
        "latency:",
        '"duration_ms":12',
        "GB",
        "k8s",
        "v2",
        "7",
    ]
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(WORDS, min_size=0, max_size=8).map(" ".join), min_size=1, max_size=30))
def test_batch_values_equal_one_line_extraction(lines: list[str]) -> None:
    """The shape-guided batch path finds exactly what per-line extraction finds."""
    report = LogAnalyzer(patterns={})
    report.update(_frame(lines))
    durations = np.concatenate([d[0] for d in report._dur]) if report._dur else np.zeros(0)
    sizes = np.concatenate([d[0] for d in report._size]) if report._size else np.zeros(0)
    want_d = [v for line in lines for v in extract_durations(line)]
    want_s = [v for line in lines for v in extract_sizes(line)]
    assert sorted(durations.tolist()) == pytest.approx(sorted(want_d))
    assert sorted(sizes.tolist()) == pytest.approx(sorted(want_s))
    got = analyze(_frame(lines), patterns={}).error_types
    want: dict[str, int] = {}
    for line in lines:
        codes = sorted(set(extract_http_statuses(line)))
        for name in sorted({f"http_{c // 100}xx" for c in codes} | {f"http_{c}" for c in codes}):
            want[name] = want.get(name, 0) + 1
    assert {k: v for k, v in got.items() if k.startswith("http_")} == want
