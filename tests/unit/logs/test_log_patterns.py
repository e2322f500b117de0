"""Anomaly patterns run on RE2: bounded time, clear errors for unsupported syntax."""

from __future__ import annotations

import time

import numpy as np
import pytest

from aiops.errors import InvalidInput, UnsupportedPattern
from aiops.logs import DEFAULT_PATTERNS, analyze, compile_patterns, from_lines
from aiops.logs.shapes import encode_lines, line_starts_of


def test_catastrophic_backtracking_pattern_returns_quickly() -> None:
    patterns = compile_patterns({"evil": r"(a+)+$"})
    line = "a" * 50_000 + "!"
    started = time.perf_counter()
    assert patterns.match_line(line) == []
    report = analyze(from_lines([line, "aaa"], default_time="2024-01-01"), patterns=patterns)
    elapsed = time.perf_counter() - started
    assert report.pattern_counts == {"evil": 1}
    assert elapsed < 2.0  # Python's re needs longer than the age of the universe here


@pytest.mark.parametrize(
    ("regex", "reason"),
    [
        (r"(ab)\1", "backreferences"),
        (r"(?P<x>a)(?P=x)", "backreferences"),
        (r"(?<=user )\w+", "lookahead/lookbehind"),
        (r"error(?!s)", "lookahead/lookbehind"),
        (r"(?>abc)", "atomic groups"),
        (r"end\Z", "\\Z"),
    ],
)
def test_unsupported_syntax_names_the_pattern_and_reason(regex: str, reason: str) -> None:
    with pytest.raises(UnsupportedPattern) as info:
        compile_patterns({"mine": regex})
    err = info.value
    assert "'mine'" in str(err) and reason in str(err)
    assert err.detail["pattern"] == "mine"
    assert err.status_code == 422


def test_invalid_regex_is_invalid_input_not_unsupported() -> None:
    with pytest.raises(InvalidInput) as info:
        compile_patterns({"broken": "(abc"})
    assert not isinstance(info.value, UnsupportedPattern)
    assert "broken" in str(info.value)


@pytest.mark.parametrize(
    "config",
    [
        "not a mapping",
        {"": "x"},
        {"bad name!": "x"},
        {"empty": ""},
        {"long": "a" * 5000},
        {"num": 5},
        {"nested": {"case_insensitive": True}},
    ],
)
def test_bad_pattern_configs_are_invalid_input(config: object) -> None:
    with pytest.raises(InvalidInput):
        compile_patterns(config)  # type: ignore[arg-type]


def test_mapping_values_may_set_case_insensitivity() -> None:
    patterns = compile_patterns(
        {"oom": {"regex": "out of memory", "case_insensitive": True}, "exact": "Out Of Memory"}
    )
    assert patterns.match_line("OUT OF MEMORY") == ["oom"]
    assert patterns.match_line("Out Of Memory") == ["oom", "exact"]


def test_a_line_counts_once_in_anomalies_but_in_every_matching_pattern() -> None:
    lines = [
        "connection refused after timed out",  # connection_refused + timeout
        "all fine",
        "OOMKilled",
    ]
    report = analyze(from_lines(lines, default_time="2024-01-01"))
    assert report.anomaly_count == 2
    assert report.pattern_counts["connection_refused"] == 1
    assert report.pattern_counts["timeout"] == 1
    assert report.pattern_counts["oom"] == 1


def test_anchors_apply_per_line_in_the_batch_scan() -> None:
    patterns = compile_patterns({"starts": r"^ERROR", "ends": r"failed$", "whole": r"\Aok\z"})
    lines = ["ERROR x", "x ERROR", "job failed", "failed job", "ok", "ok!"]
    blob = encode_lines(lines)
    hit_lines, ids = patterns.scan(blob, line_starts_of(blob))
    got = sorted((int(a), patterns.names[int(b)]) for a, b in zip(hit_lines, ids))
    assert got == [(0, "starts"), (2, "ends"), (4, "whole")]


def test_patterns_never_match_across_lines() -> None:
    patterns = compile_patterns({"span": r"foo[^x]*bar"})
    blob = encode_lines(["foo", "bar"])
    hit_lines, _ = patterns.scan(blob, line_starts_of(blob))
    assert hit_lines.size == 0


def test_default_patterns_cover_the_usual_suspects() -> None:
    patterns = compile_patterns(None)
    table = {
        "Killed process 123 (java) total-vm: out of memory": "oom",
        "container OOMKilled": "oom",
        "panic: runtime error: index out of range": "panic",
        "context deadline exceeded": "timeout",
        "dial tcp 10.0.0.1:80: connect: connection refused": "connection_refused",
        "read: connection reset by peer": "connection_reset",
        "Deadlock found when trying to get lock": "deadlock",
        '"GET / HTTP/1.1" 502 0': "http_5xx",
        "status=503": "http_5xx",
        "Segmentation fault (core dumped)": "segfault",
        "write: no space left on device": "disk_full",
        "accept4: too many open files": "too_many_open_files",
        "Back-off restarting failed container": "crash_loop",
        "java.lang.StackOverflowError": "stack_overflow",
    }
    for line, name in table.items():
        assert name in patterns.match_line(line), line
    assert patterns.match_line('"GET / HTTP/1.1" 200 512 status=201 took 5003ms') == []
    assert set(DEFAULT_PATTERNS) == set(patterns.names)


def test_empty_pattern_set_matches_nothing() -> None:
    report = analyze(from_lines(["panic: boom"], default_time="2024-01-01"), patterns={})
    assert report.anomaly_count == 0 and report.pattern_counts == {}


def test_scan_counts_equal_per_line_matching() -> None:
    patterns = compile_patterns(None)
    rng = np.random.default_rng(3)
    vocab = ["timed out", "OOMKilled", "ok", "status=503", "panic: x", "deadlock", "fine", "EPIPE"]
    lines = [" ".join(rng.choice(vocab, size=3)) for _ in range(300)]
    blob = encode_lines(lines)
    hit_lines, ids = patterns.scan(blob, line_starts_of(blob))
    batch = sorted((int(a), int(b)) for a, b in zip(hit_lines, ids))
    single = sorted(
        (i, patterns.names.index(name))
        for i, line in enumerate(lines)
        for name in patterns.match_line(line)
    )
    assert batch == single
