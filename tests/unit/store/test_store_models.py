from __future__ import annotations

import pytest

from aiops.errors import InvalidInput
from aiops.store import DetectorSpec, SeverityPolicy, parse_duration, series_key, spec_hash


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (90, 90),
        ("90", 90),
        ("30s", 30),
        ("5m", 300),
        ("1h30m", 5400),
        ("1d", 86400),
        ("1w", 604800),
        ("1500ms500ms", 2),
        (60.0, 60),
    ],
)
def test_parse_duration_accepts_seconds_and_prometheus_style_strings(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["", "5 minutes", "m5", "1.5h", "10ms", -1, 1.5, True, None])
def test_parse_duration_rejects_everything_else(value):
    with pytest.raises(InvalidInput):
        parse_duration(value)


def test_series_key_is_sorted_escaped_and_empty_for_no_labels():
    assert series_key({"b": "2", "a": 'say "hi"\\'}) == 'a="say \\"hi\\"\\\\",b="2"'
    assert series_key({}) == ""


def test_spec_hash_ignores_key_order_but_not_values_or_kind():
    assert spec_hash("zscore", {"a": 1, "b": 2}) == spec_hash("zscore", {"b": 2, "a": 1})
    assert spec_hash("zscore", {"a": 1}) != spec_hash("zscore", {"a": 2})
    assert spec_hash("zscore", {"a": 1}) != spec_hash("mad", {"a": 1})


def test_detector_spec_accepts_duration_aliases_and_defaults_name_to_id():
    spec = DetectorSpec.model_validate(
        {
            "id": "p99",
            "kind": "seasonal",
            "interval": "5m",
            "training_window": "1d",
            "datasource": {"query": "up", "step": "1m", "lookback": "6h"},
        }
    )
    assert spec.name == "p99"
    assert (spec.interval_seconds, spec.training_window_seconds) == (300, 86400)
    assert spec.datasource is not None
    assert (spec.datasource.step_seconds, spec.datasource.lookback_seconds) == (60, 21600)


def test_severity_policy_warning_above_threshold_critical_from_three():
    policy = SeverityPolicy()
    assert [policy.severity(s) for s in (None, 0.5, 1.0, 1.01, 2.99, 3.0)] == [
        "info",
        "info",
        "info",
        "warning",
        "warning",
        "critical",
    ]
    assert SeverityPolicy(warning=2, critical=5).severity(4) == "warning"
