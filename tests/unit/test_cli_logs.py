"""`aiops analyze-logs` on files: a summary for people, the whole report as JSON for scripts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aiops.cli import main

FIXTURE = str(Path(__file__).resolve().parents[1] / "fixtures" / "logs" / "java_service.log")


@pytest.fixture(autouse=True)
def log_roots(monkeypatch, tmp_path):
    monkeypatch.setenv("AIOPS_LOG_ROOTS", f"{Path(FIXTURE).parent},{tmp_path}")


def test_people_get_a_summary_and_tables(capsys):
    assert main(["analyze-logs", FIXTURE]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("28 events (33 lines), 8 errors")  # stack traces joined
    assert "java.net.ConnectException" in out and "top templates:" in out


def test_scripts_get_the_report_keys(capsys):
    assert main(["analyze-logs", FIXTURE, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in (
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
    ):
        assert key in report
    assert report["total_logs"] == 28  # events: 5 stack-trace lines joined to their entries


def test_bad_invocations_name_the_problem(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("AIOPS_LOKI_URL", raising=False)
    assert main(["analyze-logs"]) == 2
    assert "FILE or --selector" in capsys.readouterr().err
    assert main(["analyze-logs", "--selector", '{app="x"}']) == 2
    assert "AIOPS_LOKI_URL" in capsys.readouterr().err
    assert main(["analyze-logs", str(tmp_path / "missing.log")]) == 2
    assert "missing.log" in capsys.readouterr().err


def test_a_file_outside_the_log_roots_is_refused_with_the_setting_to_change(capsys):
    assert main(["analyze-logs", "/etc/passwd"]) == 2
    err = capsys.readouterr().err
    assert "outside the allowed log roots" in err and "AIOPS_LOG_ROOTS" in err


def test_an_explicit_header_format_is_used_and_a_bad_one_is_named(capsys, tmp_path):
    log = tmp_path / "odd.log"
    log.write_text(
        "".join(f"{i:03d}|worker-{i % 3}|INFO|job {i} done in {i}ms\n" for i in range(40))
        + "".join(
            f"{i:03d}|worker-{i % 3}|ERROR|job {i} failed: ConnectException\n" for i in range(5)
        ),
        encoding="utf-8",
    )
    fmt = r"^(?P<pid>\d+)\|(?P<thread>[^|]+)\|(?P<level>[A-Z]+)\|(?P<message>.*)$"
    assert main(["analyze-logs", str(log), "--log-format", fmt, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["error_count"] == 5
    assert sorted(t["template"] for t in report["templates"]) == [
        "job <NUM> done in <DUR>",
        "job <NUM> failed: ConnectException",
    ]
    assert main(["analyze-logs", str(log), "--log-format", "%{timestamp} %{bogus"]) == 2
    assert "log format" in capsys.readouterr().err
