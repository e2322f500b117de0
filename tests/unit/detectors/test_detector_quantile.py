"""quantile: order-statistic band, asymmetric for skewed metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd

from aiops import detectors
from tests.unit.detectors.detectors_support import PLAIN, index, noise

CLEAN = noise(2000, seed=2)  # no point of it is flagged with the defaults
BAND = {"calibration": "none"}  # the score is the band distance (floors, adaptation as default)


def flagged(frame: pd.DataFrame) -> list[int]:
    return np.flatnonzero(frame["score"].to_numpy() > 1).tolist()


def test_a_spike_is_outside_the_band_alone():
    assert flagged(detectors.create("quantile").score(CLEAN)) == []
    assert flagged(detectors.create("quantile", **BAND).score(CLEAN)) == []
    x = CLEAN.to_numpy().copy()
    x[500] += 10
    spiked = pd.Series(x, index=CLEAN.index)
    assert flagged(detectors.create("quantile", **BAND).score(spiked)) == [500]


def test_band_is_built_from_order_statistics():
    det = detectors.create("quantile", window=100, q_low=0.1, q_high=0.9, margin=0.5, **PLAIN).fit(
        CLEAN.iloc[:300]
    )
    row = det.score(CLEAN.iloc[300:301]).iloc[0]
    window = np.sort(CLEAN.to_numpy()[200:300])  # nothing flagged, so learned == raw
    low, mid, high = window[10], window[50], window[89]  # rank round(q * 99)
    assert row["expected"] == mid
    assert np.isclose(row["lower"], low - 0.5 * (mid - low), rtol=1e-14)
    assert np.isclose(row["upper"], high + 0.5 * (high - mid), rtol=1e-14)


def test_a_skewed_metric_gets_an_asymmetric_band():
    rng = np.random.default_rng(3)
    latency = pd.Series(np.exp(rng.normal(3.0, 0.6, 3000)), index=index(3000))
    # a 240-point window estimates the quantiles well enough for the asymmetry to hold everywhere
    frame = detectors.create("quantile", window=240).score(latency).iloc[500:]
    above = frame["upper"] - frame["expected"]
    below = frame["expected"] - frame["lower"]
    assert (above > 1.5 * below).all() and (above / below).mean() > 2
    # the default 60-point window is noisier: asymmetric on average and nearly everywhere
    frame = detectors.create("quantile").score(latency).iloc[500:]
    ratio = (frame["upper"] - frame["expected"]) / (frame["expected"] - frame["lower"])
    assert ratio.mean() > 2 and (ratio > 1.5).mean() > 0.9


def test_a_level_shift_is_flagged_then_absorbed():
    x = CLEAN.to_numpy().copy()
    x[1000:] += 10
    frame = detectors.create("quantile", **BAND).score(pd.Series(x, index=CLEAN.index))
    hits = flagged(frame)
    assert hits[0] == 1000 and hits[-1] < 1030
    assert abs(frame["expected"].iloc[1400] - 20) < 0.5
