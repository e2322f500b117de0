"""create / from_state / input checks: bad input is refused with a message naming the field."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from aiops import detectors
from aiops.errors import InvalidInput
from tests.unit.detectors.detectors_support import index, noise

COMMON = {  # the shared params of every calibrated kind, at their defaults
    "calibration": "likelihood",
    "alert_probability": 0.02,
    "short_window": 10,
    "long_window": 1000,
    "adapt_after": 30,
    "resolution_floor": 1.0,
    "level_floor": 0.005,
    "spread_floor": 0.25,
}


def test_create_knows_every_kind_and_refuses_others():
    assert detectors.KINDS == (
        "auto",
        "zscore",
        "mad",
        "ewma",
        "quantile",
        "seasonal",
        "threshold",
    )
    with pytest.raises(InvalidInput) as info:
        detectors.create("prophet")
    assert info.value.field == "kind"
    assert "zscore" in str(info.value) and "seasonal" in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("kind", "params", "field", "words"),
    [
        (
            "zscore",
            {"windw": 30},
            "params.windw",
            "allowed: window, min_periods, k, min_scale, calibration, alert_probability, "
            "short_window, long_window, adapt_after, resolution_floor, level_floor, spread_floor",
        ),
        ("zscore", {"window": 1}, "params.window", "integer in [2, 100000]"),
        ("zscore", {"window": 2.5}, "params.window", "integer"),
        ("zscore", {"window": True}, "params.window", "integer"),
        (
            "zscore",
            {"window": 10, "min_periods": 20},
            "params.min_periods",
            "must not exceed window",
        ),
        ("zscore", {"min_periods": 1}, "params.min_periods", "integer in [2, window]"),
        ("zscore", {"k": 0}, "params.k", "> 0"),
        ("mad", {"k": float("nan")}, "params.k", "> 0"),
        ("mad", {"k": "3"}, "params.k", "> 0"),
        ("ewma", {"alpha": 1.0}, "params.alpha", "(0, 1)"),
        ("ewma", {"min_scale": -1}, "params.min_scale", ">= 0"),
        ("quantile", {"q_low": 0.5}, "params.q_low", "[0, 0.5)"),
        ("quantile", {"q_high": 0.4}, "params.q_high", "(0.5, 1]"),
        ("quantile", {"margin": -0.1}, "params.margin", ">= 0"),
        ("seasonal", {"period": "month"}, "params.period", "'day' or 'week'"),
        ("seasonal", {"bucket_minutes": 7}, "params.bucket_minutes", "divides 1440"),
        ("seasonal", {"min_periods": 1}, "params.min_periods", ">= 2"),
        ("threshold", {}, "params.upper", "lower, upper or both"),
        ("threshold", {"lower": 5, "upper": 1}, "params.lower", "must not exceed upper"),
        ("threshold", {"upper": float("inf")}, "params.upper", "finite"),
        ("threshold", {"upper": 1.0, "calibration": "none"}, "params.calibration", "allowed"),
        ("auto", {"window": 7}, "params.window", "[8, 100000]"),
        ("auto", {"decide_after": 15}, "params.decide_after", "[16, 100000]"),
        ("auto", {"min_autocorrelation": 0}, "params.min_autocorrelation", "(0, 1]"),
        # the shared params of every calibrated kind
        ("mad", {"calibration": "numenta"}, "params.calibration", "'likelihood'"),
        ("mad", {"calibration": None}, "params.calibration", "'none'"),
        ("zscore", {"alert_probability": 0.5}, "params.alert_probability", "(0, 0.5)"),
        ("ewma", {"alert_probability": 0}, "params.alert_probability", "(0, 0.5)"),
        ("quantile", {"short_window": 0}, "params.short_window", "[1, 1000]"),
        ("seasonal", {"short_window": 1.5}, "params.short_window", "[1, 1000]"),
        ("auto", {"long_window": 9}, "params.long_window", "[10, 1000000]"),
        ("zscore", {"adapt_after": 0}, "params.adapt_after", "[1, 1000000]"),
        ("zscore", {"adapt_after": True}, "params.adapt_after", "[1, 1000000]"),
        ("mad", {"resolution_floor": -1}, "params.resolution_floor", "[0, 100]"),
        ("mad", {"resolution_floor": 101}, "params.resolution_floor", "[0, 100]"),
        ("ewma", {"level_floor": 1.0}, "params.level_floor", "[0, 1)"),
        ("ewma", {"level_floor": float("nan")}, "params.level_floor", "[0, 1)"),
        ("quantile", {"spread_floor": 10.5}, "params.spread_floor", "[0, 10]"),
        ("auto", {"spread_floor": "0.25"}, "params.spread_floor", "[0, 10]"),
    ],
)
def test_bad_params_name_the_param_and_what_is_allowed(kind, params, field, words):
    with pytest.raises(InvalidInput) as info:
        detectors.create(kind, **params)
    assert info.value.field == field
    assert words in str(info.value)
    assert field.split(".")[1] in str(info.value)


def test_params_are_resolved_and_normalised():
    det = detectors.create("zscore", window=60.0)
    assert det.params == {"window": 60, "min_periods": 30, "k": 5.0, "min_scale": 0.0, **COMMON}
    assert detectors.create("ewma", alpha=0.1).params["min_periods"] == 30
    # auto's residuals are taken after the period is removed: no spread floor by default
    assert detectors.create("auto").params == {
        "window": 120,
        "k": 5.0,
        "decide_after": 600,
        "period_search_seconds": 172_800,
        "min_autocorrelation": 0.6,
        "min_scale": 0.0,
        **COMMON,
        "spread_floor": 0.0,
    }
    assert set(detectors.create("threshold", upper=1).params) == {"lower", "upper"}
    assert detectors.create("zscore", k=5).params_hash() == detectors.create("zscore").params_hash()
    assert detectors.create("zscore", k=3).params_hash() != detectors.create("zscore").params_hash()
    assert (
        repr(detectors.create("threshold", upper=1)) == "ThresholdDetector(lower=None, upper=1.0)"
    )


@pytest.mark.parametrize(
    ("series", "field", "words"),
    [
        ([1.0, 2.0], "series", "pandas Series"),
        (pd.Series([1.0, 2.0]), "series.index", "DatetimeIndex, got RangeIndex"),
        (
            pd.Series([1.0, 2.0, 3.0], index=index(3)[[0, 2, 1]]),
            "series.index",
            "not sorted ascending",
        ),
        (
            pd.Series([1.0, 2.0, 3.0], index=index(3)[[0, 1, 1]]),
            "series.index",
            "duplicate timestamps",
        ),
        (
            pd.Series([1.0, 2.0], index=pd.DatetimeIndex([index(1)[0], pd.NaT])),
            "series.index",
            "NaT",
        ),
        (pd.Series(["a", "b"], index=index(2)), "series", "numeric"),
    ],
)
@pytest.mark.parametrize("kind", detectors.KINDS)
def test_bad_series_is_refused_clearly(kind, series, field, words):
    det = detectors.create(kind, **({"upper": 1.0} if kind == "threshold" else {}))
    for call in (det.fit, det.score):
        with pytest.raises(InvalidInput) as info:
            call(series)
        assert info.value.field == field
        assert words in str(info.value)
    assert det.state() == detectors.create(kind, **det.params).state()  # nothing learned


def test_a_second_call_must_start_after_the_last_point_learned():
    s = noise(100)
    det = detectors.create("zscore").fit(s.iloc[:60])
    assert det.last_timestamp == s.index[59]
    with pytest.raises(InvalidInput, match="not after the last point") as info:
        det.score(s.iloc[59:])
    assert info.value.field == "series.index"
    det.score(s[s.index > det.last_timestamp])  # the documented way
    assert det.n_seen == 100


def test_empty_series_gives_an_empty_frame_and_learns_nothing():
    det = detectors.create("mad").fit(noise(50))
    before = det.state()
    frame = det.score(noise(0))
    assert frame.empty and list(frame.columns) == ["score", "expected", "lower", "upper"]
    assert det.state() == before


def test_integer_bool_and_nullable_values_are_accepted():
    idx = index(4)
    det = detectors.create("threshold", upper=1.5)
    assert det.score(pd.Series([1, 2, 1, 1], index=idx))["score"].tolist()[1] > 1
    nullable = pd.Series(
        [1.0, None, 3.0, 1.0], index=index(4, start=idx[-1] + pd.Timedelta("1min")), dtype="Float64"
    )
    frame = det.score(nullable)
    assert frame["score"].tolist()[1] == 0.0 and np.isnan(frame["expected"].tolist()[1])


def test_naive_and_aware_indexes_and_every_time_unit_agree():
    s = noise(3 * 1440)
    want = detectors.create("seasonal", bucket_minutes=60, min_periods=2).score(s)
    for idx in (
        s.index.tz_localize(None),
        s.index.as_unit("s"),
        s.index.as_unit("ns"),
        s.index.tz_convert("Asia/Tokyo"),
    ):
        got = detectors.create("seasonal", bucket_minutes=60, min_periods=2).score(
            pd.Series(s.to_numpy(), index=idx)
        )
        np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda s: "not a dict", "state"),
        (lambda s: {**s, "kind": "nope"}, "state.kind"),
        (lambda s: {**s, "version": 99}, "state.version"),
        (lambda s: {**s, "params": {"window": 1}}, "params.window"),
        (lambda s: {**s, "learned": {"tail": "x"}}, "state.learned.tail"),
        (lambda s: {**s, "learned": {"tail": [1.0] * 61}}, "state.learned.tail"),
        (lambda s: {**s, "learned": {"tail": [1.0, None]}}, "state.learned.tail"),
        (lambda s: {**s, "last_timestamp": "yesterday-ish"}, "state.last_timestamp"),
    ],
)
def test_malformed_state_is_refused(mutate, field):
    state = json.loads(json.dumps(detectors.create("zscore").fit(noise(100)).state()))
    with pytest.raises(InvalidInput) as info:
        detectors.from_state(mutate(state))
    assert info.value.field == field


def test_state_is_plain_json_with_kind_params_and_version():
    det = detectors.create("ewma", alpha=0.2).fit(noise(100))
    state = det.state()
    assert state["kind"] == "ewma" and state["version"] == 1
    assert state["params"] == {
        "alpha": 0.2,
        "min_periods": 15,
        "k": 5.0,
        "min_scale": 0.0,
        **COMMON,
    }
    assert set(state["learned"]) == {"mean", "var", "count"} and state["learned"]["count"] == 100
    assert state["last_timestamp"] == noise(100).index[-1].isoformat()
    fresh = detectors.create("ewma").state()
    assert (
        fresh["learned"] == {"mean": None, "var": None, "count": 0}
        and fresh["last_timestamp"] is None
    )
