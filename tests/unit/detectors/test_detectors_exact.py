"""The vectorised detectors equal a plain point-by-point loop of their definition.

The loops live in ``detectors_reference``: obvious code, no vectorisation, no shortcuts. This
pins the exact sequential meaning of "clip anomalies before learning" for every window, young
streams (partial windows), overlapping anomalies, NaN, and any split into pieces.

The kinds' own models are compared with the shared floors, the bounded adaptation and the
calibration switched off (``PLAIN``): the score is then the band distance of the definition.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiops import detectors
from tests.unit.detectors import detectors_reference as ref
from tests.unit.detectors.detectors_support import PLAIN, daily, messy

SERIES = messy(1500)
VALID = SERIES[np.isfinite(SERIES.to_numpy())]

CASES = [
    ("zscore", {"window": 30, "min_periods": 15, "k": 3.0}),
    ("zscore", {"window": 60, "min_periods": 2, "k": 2.5, "min_scale": 0.5}),
    ("zscore", {"window": 7, "min_periods": 7, "k": 3.0}),
    ("mad", {"window": 30, "min_periods": 15, "k": 3.0}),
    ("mad", {"window": 60, "min_periods": 1, "k": 2.0}),
    ("mad", {"window": 5, "min_periods": 3, "k": 3.0, "min_scale": 0.2}),
    ("quantile", {"window": 40, "min_periods": 10, "q_low": 0.1, "q_high": 0.9, "margin": 0.5}),
    ("quantile", {"window": 100, "min_periods": 1, "q_low": 0.0, "q_high": 1.0, "margin": 0.2}),
    ("quantile", {"window": 9, "min_periods": 9, "q_low": 0.25, "q_high": 0.75, "margin": 1.0}),
    ("ewma", {"alpha": 0.05, "k": 3.0}),
    ("ewma", {"alpha": 0.5, "min_periods": 2, "k": 2.0, "min_scale": 0.3}),
]


# the bounded adaptation: past adapt_after consecutive points outside, learned raw (the messy
# series' level shift and variance change make such runs)
ADAPT_CASES = [
    ("zscore", {"window": 30, "min_periods": 15, "k": 3.0, "adapt_after": 3}),
    ("zscore", {"window": 7, "min_periods": 7, "k": 2.0, "adapt_after": 1}),
    ("mad", {"window": 30, "min_periods": 15, "k": 3.0, "adapt_after": 4}),
    ("mad", {"window": 60, "min_periods": 1, "k": 2.0, "adapt_after": 2}),
    ("quantile", {"window": 40, "min_periods": 10, "q_low": 0.1, "q_high": 0.9, "margin": 0.5,
                  "adapt_after": 3}),
    ("ewma", {"alpha": 0.05, "k": 3.0, "adapt_after": 2}),
    ("ewma", {"alpha": 0.3, "k": 2.0, "adapt_after": 1}),
]  # fmt: skip


def create(kind: str, params: dict) -> detectors.Detector:
    return detectors.create(kind, **{**PLAIN, **params})


def reference(kind: str, params: dict, x: np.ndarray) -> np.ndarray:
    p = create(kind, params).params  # resolved defaults
    adapt = p["adapt_after"]
    if kind == "ewma":
        out = ref.ewma(x, p["alpha"], p["min_periods"], p["k"], p["min_scale"], adapt)
    elif kind == "quantile":
        out = ref.quantile(
            x, p["window"], p["min_periods"], p["q_low"], p["q_high"], p["margin"],
            p["min_scale"], adapt,
        )  # fmt: skip
    else:
        out = getattr(ref, kind)(x, p["window"], p["min_periods"], p["k"], p["min_scale"], adapt)
    return np.array(out)


def assert_bands_equal(frame: pd.DataFrame, want: np.ndarray) -> None:
    got = frame[["lower", "expected", "upper"]].to_numpy()
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, equal_nan=True)


@pytest.mark.parametrize(("kind", "params"), CASES + ADAPT_CASES)
def test_bands_equal_the_point_by_point_definition(kind, params):
    want = reference(kind, params, VALID.to_numpy())
    frame = create(kind, params).score(SERIES)
    assert_bands_equal(frame.loc[VALID.index], want)
    flagged = (frame["score"] > 1).sum()
    assert flagged >= 20  # the cases do exercise the clipping recursion


@pytest.mark.parametrize(("kind", "params"), CASES + ADAPT_CASES)
@settings(max_examples=6, deadline=None)
@given(cuts=st.lists(st.integers(1, len(VALID) - 1), min_size=1, max_size=5, unique=True))
def test_any_split_equals_the_definition(kind, params, cuts):
    want = reference(kind, params, VALID.to_numpy())
    det = create(kind, params)
    bounds = [0, *sorted(cuts), len(VALID)]
    frame = pd.concat([det.score(VALID.iloc[a:b]) for a, b in itertools.pairwise(bounds)])
    assert_bands_equal(frame, want)


@pytest.mark.parametrize(("kind", "params"), ADAPT_CASES)
def test_a_lasting_change_is_learned_raw_after_adapt_after_points_outside(kind, params):
    adapted = create(kind, params).score(VALID)
    clipped = create(kind, {**params, "adapt_after": PLAIN["adapt_after"]}).score(VALID)
    outside = (adapted["score"] > 1).to_numpy()
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, outside.astype(int), 0])))[::2]
    assert runs.max() > params["adapt_after"]  # the case does exercise the adaptation
    assert not np.allclose(adapted["expected"], clipped["expected"], equal_nan=True)


def seasonal_reference(series: pd.Series, p: dict) -> np.ndarray:
    valid = series[np.isfinite(series.to_numpy())]
    ns = valid.index.as_unit("ns").asi8
    day = 86_400 * 10**9
    period, offset = (day, 0) if p["period"] == "day" else (7 * day, 4 * day)
    out = ref.seasonal(
        valid.to_numpy(), ns, period, offset, p["bucket_minutes"] * 60 * 10**9,
        p["alpha"], p["min_periods"], p["pool"], p["k"], p["min_scale"],
    )  # fmt: skip
    return np.array(out)


def seasonal_data() -> pd.Series:
    s = daily(12, freq="10min")
    x = s.to_numpy().copy()
    rng = np.random.default_rng(5)
    x[rng.choice(len(x), 40, replace=False)] += rng.normal(0, 15, 40)
    x[len(x) // 2 :] += 6  # level shift
    x[rng.choice(len(x), 20, replace=False)] = np.nan
    keep = np.ones(len(x), bool)
    keep[600:900] = False  # a gap of two days: no visits, no updates
    return pd.Series(x, index=s.index)[keep]


@pytest.mark.parametrize(
    "params",
    [
        {"bucket_minutes": 60, "min_periods": 2, "k": 3.0},
        {
            "bucket_minutes": 30,
            "min_periods": 3,
            "alpha": 0.5,
            "k": 2.0,
            "min_scale": 0.5,
            "pool": 0,
        },
        {"bucket_minutes": 180, "min_periods": 2, "pool": 5, "k": 3.0},
        {"period": "week", "bucket_minutes": 120, "min_periods": 2, "alpha": 1.0, "k": 3.0},
    ],
)
def test_seasonal_equals_the_point_by_point_definition(params):
    series = seasonal_data()
    p = create("seasonal", params).params
    want = seasonal_reference(series, p)
    frame = create("seasonal", params).score(series)
    valid = np.isfinite(series.to_numpy())
    assert_bands_equal(frame[valid], want)
    if params.get("period") != "week":
        assert (frame["score"] > 1).sum() >= 10
    det = create("seasonal", params)
    for a, b in [(0, 1), (1, 500), (500, 501), (501, 1000), (1000, len(series))]:
        det = detectors.from_state(det.state())
        assert_bands_equal(
            det.score(series.iloc[a:b])[valid[a:b]],
            want[valid[:b].sum() - valid[a:b].sum() : valid[:b].sum()],
        )


def test_reference_rank_rule_matches_the_documented_one():
    assert [ref._rank(0.5, n) for n in (1, 2, 3, 4, 60)] == [0, 1, 1, 2, 30]  # halves round up
    assert ref._rank(0.05, 240) == math.floor(0.05 * 239 + 0.5) == 12
