"""Analysis of hand-written fixture files, with counts derived by hand from their content.

Counts are per event: stack-trace, traceback and goroutine-dump lines are joined to the line
that starts their event (java: 5 continuation lines, go: 4, python: 4).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aiops.logs import analyze
from aiops.sources.files import read_log_file

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "logs"

EXPECTED = {
    "java_service.log": {
        "total_logs": 28,
        "error_count": 8,
        "anomaly_count": 7,
        "levels": {"debug": 4, "info": 13, "warn": 3, "error": 8},
        "pattern_counts": {"oom": 1, "timeout": 2, "connection_refused": 2, "http_5xx": 2},
        "error_types": {
            "java.net.ConnectException": 2,
            "ECONNREFUSED": 2,
            "java.net.SocketTimeoutException": 2,
            "java.lang.NullPointerException": 1,
            "java.lang.OutOfMemoryError": 1,
            "http_5xx": 2,
            "http_503": 2,
        },
        "error_categories": {
            "network": 2,
            "timeout": 2,
            "application": 1,
            "resource": 1,
            "dependency": 2,
        },
        "durations": 24,
        "sizes": 0,
        "time_distribution": {
            "2024-03-04T10:00:00Z": 13,
            "2024-03-04T10:05:00Z": 8,
            "2024-03-04T10:10:00Z": 7,
        },
        "errors_by_bucket": {
            "2024-03-04T10:00:00Z": 0,
            "2024-03-04T10:05:00Z": 5,
            "2024-03-04T10:10:00Z": 3,
        },
    },
    "go_service.jsonl": {
        "total_logs": 30,
        "error_count": 8,
        "anomaly_count": 8,  # the panic and its SIGSEGV line are one event now
        "levels": {"info": 17, "warn": 3, "error": 7, "debug": 2, "fatal": 1},
        "pattern_counts": {
            "connection_refused": 4,
            "http_5xx": 7,
            "timeout": 3,
            "panic": 1,
            "segfault": 1,
        },
        "error_types": {
            "grpc.UNAVAILABLE": 4,
            "ECONNREFUSED": 4,
            "http_5xx": 7,
            "http_503": 4,
            "context.DeadlineExceeded": 3,
            "http_504": 3,
            "runtime error: invalid memory address or nil pointer dereference": 1,
        },
        "error_categories": {"network": 4, "timeout": 3, "dependency": 4, "application": 1},
        "durations": 28,
        "sizes": 0,
        "time_distribution": {"2024-03-04T11:00:00Z": 20, "2024-03-04T11:05:00Z": 10},
        "errors_by_bucket": {"2024-03-04T11:00:00Z": 0, "2024-03-04T11:05:00Z": 8},
    },
    "python_worker.log": {
        "total_logs": 27,
        "error_count": 9,
        "anomaly_count": 9,
        "levels": {"info": 10, "warn": 4, "error": 7, "debug": 4, "fatal": 2},
        "pattern_counts": {"connection_reset": 4, "connection_refused": 3, "oom": 2},
        "error_types": {
            "ConnectionResetError": 4,
            "ECONNRESET": 4,
            "ValueError": 3,
            "Traceback": 1,
            "KeyError": 1,
            "sqlalchemy.exc.OperationalError": 3,
            "ECONNREFUSED": 3,
        },
        "error_categories": {"network": 7, "data": 4, "application": 1, "dependency": 3},
        "durations": 16,
        "sizes": 2,
        "time_distribution": {
            "2024-03-04T12:00:00Z": 18,
            "2024-03-04T12:05:00Z": 6,
            "2024-03-04T12:10:00Z": 3,
        },
        "errors_by_bucket": {
            "2024-03-04T12:00:00Z": 4,
            "2024-03-04T12:05:00Z": 3,
            "2024-03-04T12:10:00Z": 2,
        },
    },
    "nginx_access.log": {
        "total_logs": 34,
        "error_count": 8,
        "anomaly_count": 8,
        "levels": {"warn": 5, "error": 8, "unknown": 21},
        "pattern_counts": {"http_5xx": 8},
        "error_types": {
            "http_4xx": 5,
            "http_404": 4,
            "http_499": 1,
            "http_5xx": 8,
            "http_500": 3,
            "http_502": 2,
            "http_503": 2,
            "http_504": 1,
        },
        "error_categories": {"data": 5, "application": 3, "dependency": 4, "timeout": 1},
        "durations": 34,
        "sizes": 34,
        "time_distribution": {"2024-03-04T13:00:00Z": 31, "2024-03-04T13:05:00Z": 3},
        "errors_by_bucket": {"2024-03-04T13:00:00Z": 7, "2024-03-04T13:05:00Z": 1},
    },
}


@pytest.fixture(scope="module", params=sorted(EXPECTED))
def case(request: pytest.FixtureRequest) -> tuple[dict, dict]:
    frame = read_log_file(FIXTURES / request.param)
    return analyze(frame, bucket="5min").to_dict(), EXPECTED[request.param]


def test_counts_match_the_fixture(case: tuple[dict, dict]) -> None:
    report, want = case
    assert report["total_logs"] == want["total_logs"]
    assert report["error_count"] == want["error_count"]
    assert report["anomaly_count"] == want["anomaly_count"]
    assert report["error_rate"] == pytest.approx(want["error_count"] / want["total_logs"], rel=1e-5)
    assert report["anomaly_rate"] == pytest.approx(
        want["anomaly_count"] / want["total_logs"], rel=1e-5
    )


def test_levels_match_the_fixture(case: tuple[dict, dict]) -> None:
    report, want = case
    assert report["levels"] == want["levels"]


def test_pattern_counts_match_the_fixture(case: tuple[dict, dict]) -> None:
    report, want = case
    nonzero = {k: v for k, v in report["pattern_counts"].items() if v}
    assert nonzero == want["pattern_counts"]


def test_error_types_and_categories_match_the_fixture(case: tuple[dict, dict]) -> None:
    report, want = case
    assert report["error_types"] == want["error_types"]
    assert report["error_categories"] == want["error_categories"]


def test_performance_counts_match_the_fixture(case: tuple[dict, dict]) -> None:
    report, want = case
    assert report["performance"]["durations_ms"]["overall"]["count"] == want["durations"]
    assert report["performance"]["sizes_bytes"]["overall"]["count"] == want["sizes"]


def test_time_distribution_matches_the_fixture(case: tuple[dict, dict]) -> None:
    report, want = case
    assert report["time_distribution"] == want["time_distribution"]
    assert report["rates"]["errors_by_bucket"] == want["errors_by_bucket"]


def test_template_counts_add_up_to_the_total(case: tuple[dict, dict]) -> None:
    report, want = case
    assert sum(report["template_counts"].values()) == want["total_logs"]
    assert sum(t["count"] for t in report["templates"]) == want["total_logs"]


def test_java_fixture_values_and_templates() -> None:
    report = analyze(read_log_file(FIXTURES / "java_service.log")).to_dict()
    durations = report["performance"]["durations_ms"]["overall"]
    # 4.532 s startup, 12 requests (35..52 ms), 3 slow payments, 2 x 30 s timeouts,
    # 2 x 120 ms shipping calls, 4 x 12 ms cache refreshes
    total = (
        4532 + (35 + 41 + 28 + 52 + 33 + 47 + 39 + 30 + 44 + 36 + 50 + 29) + (1250 + 1890 + 2100)
    )
    total += 2 * 30000 + 2 * 120 + 4 * 12
    assert durations["max"] == 30000
    assert durations["min"] == 12
    assert durations["mean"] == pytest.approx(total / 24, rel=1e-5)
    top = report["templates"][0]
    assert top["count"] == 12
    assert top["template"] == "GET <PATH> completed in <DUR>"  # the header is not mined
    assert top["component"] == "c.e.shop.OrderController"
    assert top["examples"][0].startswith("2024-03-04 10:01:00.000 INFO ")  # raw lines
    assert top["level"] == "info"
    assert len(top["examples"]) == 3


def test_nginx_fixture_request_time_is_seconds() -> None:
    report = analyze(read_log_file(FIXTURES / "nginx_access.log")).to_dict()
    durations = report["performance"]["durations_ms"]["overall"]
    assert durations["max"] == pytest.approx(60001.0)
    sizes = report["performance"]["sizes_bytes"]["overall"]
    assert sizes["max"] == 88211
    assert sizes["min"] == 0


def test_python_fixture_sizes_in_bytes() -> None:
    report = analyze(read_log_file(FIXTURES / "python_worker.log")).to_dict()
    sizes = report["performance"]["sizes_bytes"]["overall"]
    assert sizes["min"] == pytest.approx(2.1e9)
    assert sizes["max"] == pytest.approx(2.2e9)
