"""Calibrated scores (the default): an alert rate that does not depend on the shape of the noise.

The score is the likelihood of the recent band distances under the series' own history
(:mod:`aiops.detectors.base`), so series whose band distances look very different (Gaussian,
heavy tails, small counts, bursts) all alert rarely when nothing is wrong, while the raw band
distance (``calibration="none"``) alerts far more often on a heavy-tailed series.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aiops import detectors
from aiops.detectors.base import CALIBRATION_WARMUP
from tests.unit.detectors.detectors_support import index

CALIBRATED = [kind for kind in detectors.KINDS if kind != "threshold"]
N = 20_000


def on_time_axis(kind: str, values: np.ndarray) -> pd.Series:
    # seasonal needs whole days; 15 minutes gives it 200 of them
    return pd.Series(values, index=index(len(values), "15min" if kind == "seasonal" else "1min"))


def normal_series() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "gaussian": 10 + rng.normal(0, 1, N),
        "student_t_df2": 10 + rng.standard_t(2, N),  # heavy tails: infinite variance
        "poisson_mean_2": rng.poisson(2, N).astype(float),  # small integer counts
        # bursts are part of normal life here: 5% of points carry an exponential burst
        "bursty": np.where(rng.random(N) < 0.05, rng.exponential(20, N), 0) + rng.gamma(2, 1, N),
    }


SHAPES = normal_series()


def alert_rate(kind: str, values: np.ndarray, **params) -> float:
    frame = detectors.create(kind, **params).score(on_time_axis(kind, values))
    return float((frame["score"] > 1).mean())


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("kind", CALIBRATED)
def test_normal_series_of_any_shape_rarely_alert_at_defaults(kind, shape):
    assert alert_rate(kind, SHAPES[shape]) < 0.005


@pytest.mark.parametrize("kind", CALIBRATED)
def test_without_calibration_heavy_tails_alert_much_more_often(kind):
    heavy = SHAPES["student_t_df2"]
    raw, calibrated = alert_rate(kind, heavy, calibration="none"), alert_rate(kind, heavy)
    assert raw > 0.01
    assert raw > 10 * calibrated
    assert alert_rate(kind, SHAPES["gaussian"], calibration="none") < 0.001  # tails it was made for


@pytest.mark.parametrize("kind", CALIBRATED)
def test_a_fresh_detector_does_not_alert_on_clean_noise_after_the_calibration_warm_up(kind):
    # The long-run mean and variance of the band distances start as plain averages: an
    # exponential average started at the first value with variance 0 underestimated the
    # spread for a few hundred points and alerted on 30-60% of clean series right there.
    for seed in range(10):
        rng = np.random.default_rng(seed)
        frame = detectors.create(kind).score(on_time_axis(kind, 10 + rng.normal(0, 1, 3000)))
        assert (frame["score"] <= 1).all(), f"seed {seed}"


@pytest.mark.parametrize("kind", CALIBRATED)
def test_a_truly_extreme_value_is_alerted_at_defaults(kind):
    rng = np.random.default_rng(3)
    x = 10 + rng.normal(0, 1, 3000)
    x[2500] += 1000
    frame = detectors.create(kind).score(on_time_axis(kind, x))
    assert frame["score"].iloc[2500] > 1
    assert (frame["score"].iloc[:2500] <= 1).all()


@pytest.mark.parametrize("kind", CALIBRATED)
def test_the_first_band_distances_only_teach_the_calibration(kind):
    frame = detectors.create(kind, calibration="none").score(on_time_axis(kind, SHAPES["bursty"]))
    calibrated = detectors.create(kind).score(on_time_axis(kind, SHAPES["bursty"]))
    banded = np.flatnonzero(frame["upper"].notna().to_numpy())
    first = banded[:CALIBRATION_WARMUP]
    assert (frame["score"].iloc[first] > 0).any()  # there were distances to learn from
    assert (calibrated["score"].iloc[: banded[CALIBRATION_WARMUP]] == 0).all()


def test_alert_probability_sets_how_unlikely_recent_behaviour_must_be():
    heavy = on_time_axis("mad", SHAPES["student_t_df2"])
    strict = detectors.create("mad", alert_probability=1e-4).score(heavy)["score"]
    loose = detectors.create("mad", alert_probability=0.2).score(heavy)["score"]
    # score = log(2 tail) / log(2 alert_probability): the same tail, rescaled
    # (a point inside its band is capped at 1: compare where neither is capped)
    both = (strict > 0) & (loose > 0) & (loose < 1)
    assert both.sum() > 100
    ratio = (strict[both] / loose[both]).to_numpy()
    np.testing.assert_allclose(ratio, np.log(0.4) / np.log(2e-4), rtol=1e-9)
    assert (loose > 1).sum() > (strict > 1).sum()


@pytest.mark.parametrize("kind", CALIBRATED)
def test_a_constant_series_scores_exactly_zero(kind):
    frame = detectors.create(kind).score(on_time_axis(kind, np.full(3000, 7.0)))
    assert (frame["score"] == 0).all()
