"""aiops.triage, pure: the link's checks, the selector's labels, the windows, the comparison."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from pydantic import ValidationError

from aiops.errors import InvalidInput
from aiops.logs import from_lines
from aiops.triage import (
    TriageLink,
    TriageWindow,
    compare_windows,
    render_selector,
    triage_markdown,
    triage_windows,
    window_frame,
)

T = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def frame(lines: list[str], start: datetime, step: float = 1.0):
    return from_lines(
        [
            f"{(start + timedelta(seconds=i * step)).isoformat()} {line}"
            for i, line in enumerate(lines)
        ]
    )


def test_a_selector_takes_its_label_values_from_the_series_escaped():
    labels = {"service": 'chec"kout', "region": "eu.1"}
    assert render_selector('{app="$service"}', labels) == '{app="chec\\"kout"}'
    assert (
        render_selector('{app="${service}-web", env=~"prod|$region"}', labels)
        == '{app="chec\\"kout-web", env=~"prod|eu\\\\.1"}'
    )
    with pytest.raises(
        InvalidInput, match=r"uses \$pod but the incident's series has no label 'pod'"
    ) as caught:
        render_selector('{pod="$pod"}', labels)
    assert caught.value.detail["field"] == "selector"


@pytest.mark.parametrize(
    ("link", "field"),
    [
        ({"selector": "app=api"}, "selector"),
        ({"selector": '{app="a"} |= "x"'}, "selector"),
        ({"selector": '{app="a"}', "path": "/x"}, None),
        ({}, None),
        ({"job": "Web!"}, "job"),
        ({"path": "/x", "lead": "2d"}, "lead"),
        ({"path": "/x", "max_window": "10s"}, "max_window"),
        ({"path": "/x", "baselines": []}, "baselines"),
        ({"path": "/x", "colour": "red"}, "colour"),
    ],
)
def test_a_bad_link_is_refused_naming_its_field(link, field):
    with pytest.raises(ValidationError) as caught:
        TriageLink.model_validate(link)
    assert caught.value.errors()[0]["loc"] == ((field,) if field else ())


def test_the_incident_window_starts_a_lead_before_the_onset_and_baselines_follow_its_length():
    link = TriageLink(selector='{app="a"}', lead="5m", max_window="1h")
    window, baselines = triage_windows(link, T, None, T + timedelta(minutes=3))
    assert (window.start, window.end) == (T - timedelta(minutes=5), T + timedelta(minutes=3))
    assert [(b.name, b.start, b.end) for b in baselines] == [
        ("previous", T - timedelta(minutes=13), T - timedelta(minutes=5)),
        ("day", T - timedelta(days=1, minutes=5), T - timedelta(days=1) + timedelta(minutes=3)),
        ("week", T - timedelta(days=7, minutes=5), T - timedelta(days=7) + timedelta(minutes=3)),
    ]
    resolved, _ = triage_windows(link, T, T + timedelta(minutes=10), T + timedelta(hours=5))
    assert resolved.end == T + timedelta(minutes=10)  # the resolution, not now
    capped, _ = triage_windows(link, T, None, T + timedelta(hours=5))
    assert capped.end == capped.start + timedelta(hours=1)  # at most max_window


def test_the_comparison_finds_new_errors_jumps_vanished_templates_and_slower_operations():
    window = TriageWindow("incident", T, T + timedelta(minutes=5))
    previous = TriageWindow("previous", T - timedelta(minutes=5), T)
    base = frame(
        [
            f"INFO GET /orders/{i} completed in {20 + i % 5}ms"
            if i % 10
            else f"INFO heartbeat {i} ok"
            for i in range(300)
        ],
        previous.start,
    )
    cur = frame(
        [f"INFO GET /orders/{i} completed in {400 + i % 5}ms" for i in range(240)]
        + [f"WARN retrying payment {i}" for i in range(30)]
        + [
            f"ERROR java.net.SocketTimeoutException: Read timed out to db-{i % 3}"
            for i in range(30)
        ],
        window.start,
    )
    base = pd.concat(
        [base, frame([f"WARN retrying payment {i}" for i in range(3)], previous.start)],
        ignore_index=True,
    )
    report = compare_windows(cur, [(previous, base)], window=window, selector='{app="api"}')

    kinds = {f["kind"]: f for f in report["findings"]}
    assert set(kinds) == {"new_error_type", "new_template", "rate_jump", "vanished", "slower"}
    assert kinds["new_error_type"]["error_type"] == "java.net.SocketTimeoutException"
    assert (
        kinds["new_error_type"]["logql"]["line_filter"]
        == '{app="api"} |= "java.net.SocketTimeoutException"'
    )
    assert (
        kinds["rate_jump"]["template"] == "retrying payment <NUM>"
        and kinds["rate_jump"]["count"] == 30
    )
    assert (
        kinds["vanished"]["template"].startswith("heartbeat")
        and kinds["vanished"]["previous_count"] == 30
    )
    assert kinds["slower"]["p50_ms"]["incident"] > 10 * kinds["slower"]["p50_ms"]["baseline"]
    assert kinds["new_template"]["examples"][0].endswith(
        "ERROR java.net.SocketTimeoutException: Read timed out to db-0"
    )
    assert kinds["new_template"]["logql"]["pattern_filter"].startswith('{app="api"} |> ')
    assert report["lines"] == {"incident": 300, "baseline": 303}
    assert report["findings"][0]["severity"] == "warning"  # warnings before info
    assert report["summary"].startswith(
        "1 new error type, 1 new template, 1 rate jump, 1 slower operation, 1 vanished template"
    )
    md = triage_markdown(report, title="Triage of incident 7")
    assert (
        md.startswith("# Triage of incident 7")
        and 'LogQL: `{app="api"} |= "java.net.SocketTimeoutException"`' in md
    )


def test_without_baseline_lines_nothing_is_compared_and_the_summary_says_so():
    window = TriageWindow("incident", T, T + timedelta(minutes=5))
    cur = frame(["ERROR boom"] * 10, window.start)
    empty = window_frame(cur, TriageWindow("previous", T - timedelta(minutes=5), T))
    report = compare_windows(
        cur, [(TriageWindow("previous", T - timedelta(minutes=5), T), empty)], window=window
    )
    assert report["findings"] == [] and report["baselines"][0]["used"] is False
    assert (
        report["summary"]
        == "10 log lines in the incident window; no baseline lines to compare with"
    )
    assert report["top_templates"][0]["count"] == 10 and report["top_templates"][0]["logql"] is None


def test_a_file_is_cut_into_windows_by_timestamp():
    lines = frame([f"line {i}" for i in range(10)], T, step=60)
    cut = window_frame(
        lines, TriageWindow("incident", T + timedelta(minutes=3), T + timedelta(minutes=6))
    )
    assert list(cut["line"].str.slice(-6)) == ["line 3", "line 4", "line 5"]
