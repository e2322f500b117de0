"""mad: rolling median and 1.4826 * median |one-step residual|."""

from __future__ import annotations

import numpy as np
import pandas as pd

from aiops import detectors
from tests.unit.detectors.detectors_support import PLAIN, noise

CLEAN = noise(2000, seed=0)
BAND = {"calibration": "none"}  # the score is the band distance (floors, adaptation as default)


def with_values(values: np.ndarray) -> pd.Series:
    return pd.Series(values, index=CLEAN.index[: len(values)])


def flagged(frame: pd.DataFrame) -> list[int]:
    return np.flatnonzero(frame["score"].to_numpy() > 1).tolist()


def test_a_spike_is_outside_the_band_alone():
    assert flagged(detectors.create("mad").score(CLEAN)) == []
    assert flagged(detectors.create("mad", **BAND).score(CLEAN)) == []
    x = CLEAN.to_numpy().copy()
    x[500] += 10
    assert flagged(detectors.create("mad", **BAND).score(with_values(x))) == [500]


def test_expected_is_the_window_median_and_the_scale_the_residual_mad():
    frame = detectors.create("mad", window=60, min_periods=30, **PLAIN).score(CLEAN.iloc[:600])
    x = CLEAN.to_numpy()
    # nothing flagged, so learned == raw: the median is order statistic round(0.5 * 59) = 30
    assert frame["expected"].iloc[500] == np.sort(x[440:500])[30]
    residuals = x[440:500] - frame["expected"].to_numpy()[440:500]
    half = frame["upper"].iloc[500] - frame["expected"].iloc[500]
    assert np.isclose(half, 5 * 1.482602218505602 * np.sort(np.abs(residuals))[30], rtol=1e-12)


def test_warm_up_needs_min_periods_values_then_min_periods_residuals():
    frame = detectors.create("mad", window=60, min_periods=10, **PLAIN).score(CLEAN.iloc[:100])
    assert frame["expected"].iloc[:20].isna().all() and frame["expected"].iloc[20:].notna().all()


def test_a_burst_of_spikes_within_one_window_is_flagged_point_by_point():
    x = CLEAN.to_numpy().copy()
    x[600:612] += [10, -20, 15, -10, 30, -12, 11, 25, -18, 10, -10, 40]  # 12 of 60 points
    hits = flagged(detectors.create("mad", **BAND).score(with_values(x)))
    assert hits == list(range(600, 612))


def test_a_level_shift_is_flagged_then_absorbed_within_about_half_a_window():
    x = CLEAN.to_numpy().copy()
    x[1000:] += 10
    frame = detectors.create("mad", **BAND).score(with_values(x))
    hits = flagged(frame)
    # window 60: the median only crosses over once half the window is clipped new points
    assert hits == list(range(1000, hits[-1] + 1)) and 20 <= len(hits) < 30
    assert abs(frame["expected"].iloc[1200] - 20) < 0.5
