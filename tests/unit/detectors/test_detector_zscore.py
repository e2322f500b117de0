"""zscore: rolling mean/std of the previous ``window`` learned points."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aiops import detectors
from tests.unit.detectors.detectors_support import PLAIN, noise

CLEAN = noise(2000, seed=2)  # N(10, 1); no point of it is flagged with the defaults
BAND = {"calibration": "none"}  # the score is the band distance (floors, adaptation as default)


def with_values(values: np.ndarray) -> pd.Series:
    return pd.Series(values, index=CLEAN.index[: len(values)])


def flagged(frame: pd.DataFrame) -> list[int]:
    return np.flatnonzero(frame["score"].to_numpy() > 1).tolist()


def test_the_clean_series_is_quiet_and_a_spike_is_outside_the_band_alone():
    assert flagged(detectors.create("zscore").score(CLEAN)) == []
    assert flagged(detectors.create("zscore", **BAND).score(CLEAN)) == []
    x = CLEAN.to_numpy().copy()
    x[500] += 10
    frame = detectors.create("zscore", **BAND).score(with_values(x))
    assert flagged(frame) == [500]


def test_score_is_the_z_score_over_the_previous_window_divided_by_k():
    x = CLEAN.to_numpy().copy()
    x[500] += 10
    frame = detectors.create("zscore", window=60, k=4.0, **PLAIN).score(with_values(x))
    window = x[440:500]  # the point itself excluded; nothing in there was clipped
    mean, std = window.mean(), window.std(ddof=1)
    row = frame.iloc[500]
    assert np.isclose(row["expected"], mean, rtol=1e-12)
    assert np.isclose(row["upper"] - row["expected"], 4 * std, rtol=1e-12)
    assert np.isclose(row["score"], abs(x[500] - mean) / (4 * std), rtol=1e-12)


def test_warm_up_lasts_min_periods_points():
    frame = detectors.create("zscore", window=60, min_periods=20).score(CLEAN.iloc[:100])
    assert frame["expected"].iloc[:20].isna().all() and frame["expected"].iloc[20:].notna().all()
    assert np.isclose(frame["expected"].iloc[20], CLEAN.iloc[:20].mean())


def test_a_huge_spike_does_not_hide_the_next_one():
    x = CLEAN.to_numpy().copy()
    x[500] = 1e6
    x[510] += 8
    assert flagged(detectors.create("zscore", **BAND).score(with_values(x))) == [500, 510]
    # a plain rolling z-score learns the spike and goes blind for a whole window
    s = with_values(x)
    plain = (s - s.rolling(60).mean().shift()) / s.rolling(60).std().shift()
    assert abs(plain.iloc[510]) < 1


def test_a_level_shift_is_flagged_then_absorbed_within_a_few_points():
    x = CLEAN.to_numpy().copy()
    x[1000:] += 10
    frame = detectors.create("zscore", **BAND).score(with_values(x))
    hits = flagged(frame)
    assert hits[0] == 1000 and hits[-1] < 1010  # outside at once, absorbed within 10 points
    assert abs(frame["expected"].iloc[1200] - 20) < 0.5  # the band has moved to the new level
    # the calibrated default needs a few points of the short window to be sure, then lets go
    hits = flagged(detectors.create("zscore").score(with_values(x)))
    assert 1000 <= hits[0] <= 1003 and hits[-1] < 1020


def test_a_variance_change_is_flagged_then_absorbed():
    x = CLEAN.to_numpy().copy()
    x[1000:] = 10 + (x[1000:] - 10) * 5
    hits = flagged(detectors.create("zscore", **BAND).score(with_values(x)))
    assert hits and hits[0] >= 1000 and hits[-1] < 1060


def test_a_constant_window_gives_finite_scores_and_min_scale_sets_a_floor():
    x = np.r_[np.full(100, 5.0), 6.0]
    frame = detectors.create("zscore", window=30, **PLAIN).score(with_values(x))
    assert (frame["score"].iloc[30:100] == 0).all()
    assert 1 < frame["score"].iloc[100] < np.inf
    floored = detectors.create("zscore", window=30, min_scale=0.5, **PLAIN).score(with_values(x))
    assert floored["score"].iloc[100] == 0.4  # |6 - 5| / (5 * 0.5), k defaults to 5


def test_the_level_floor_bounds_the_band_distance_after_a_flat_stretch():
    x = np.r_[np.full(100, 5.0), 6.0]
    frame = detectors.create("zscore", window=30, resolution_floor=0.0, **BAND).score(
        with_values(x)
    )
    # no step seen yet: the floor is level_floor * |level| = 0.005 * 5, times k = 5
    assert frame["upper"].iloc[100] == 5.0 + 5 * 0.005 * 5.0
    assert frame["score"].iloc[100] == 8.0


def test_before_any_step_the_resolution_is_how_the_value_is_written():
    x = np.r_[np.full(100, 5.0), 6.0, 6.25]
    frame = detectors.create("zscore", window=30, **BAND).score(with_values(x))
    # 6 is written to the unit: a scale of 1, times k = 5; then the step 1 is the resolution
    assert frame["upper"].iloc[100] == 5.0 + 5 * 1.0
    assert frame["score"].iloc[100] == pytest.approx(0.2)
