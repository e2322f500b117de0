"""A lasting change of level: alerted at its onset, then the new normal within a bounded time.

Every calibrated kind learns a point outside its band clipped, except past ``adapt_after``
consecutive points outside, when it learns the raw values (:mod:`aiops.detectors.base`). The
documented bound, per kind, at the defaults (``adapt_after`` 30, ``short_window`` 10): the
band has moved within ``adapt_after`` points plus the model's memory, and the calibrated score
lets go ``short_window`` points after the band distance does.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from aiops import detectors
from tests.unit.detectors.detectors_support import index

ONSET = 1000
ADAPT_AFTER, SHORT_WINDOW = 30, 10
LET_GO_WITHIN = {  # points after the onset, at the defaults
    # windows of 60 (mad: its scale is a window of residuals of window medians: two windows)
    "zscore": ADAPT_AFTER + 2 * 60 + SHORT_WINDOW,
    "mad": ADAPT_AFTER + 2 * 60 + SHORT_WINDOW,
    "quantile": ADAPT_AFTER + 2 * 60 + SHORT_WINDOW,
    # min_periods = ceil(3 / alpha) = 60 points of memory
    "ewma": ADAPT_AFTER + 60 + SHORT_WINDOW,
    # never clips: its median and MAD windows of 120 follow the new level
    "auto": 2 * 120 + SHORT_WINDOW,
    # the profile moves once per period: two days of 96 points
    "seasonal": 2 * 96 + SHORT_WINDOW,
}
CALIBRATED = list(LET_GO_WITHIN)


def shifted(kind: str, seed: int, shift: float) -> pd.Series:
    rng = np.random.default_rng(seed)
    x = 10 + rng.normal(0, 1, ONSET + 1500)
    x[ONSET:] += shift
    return pd.Series(x, index=index(len(x), "15min" if kind == "seasonal" else "1min"))


def flagged(frame: pd.DataFrame) -> np.ndarray:
    return np.flatnonzero(frame["score"].to_numpy() > 1)


def test_every_calibrated_kind_has_a_documented_bound():
    assert set(CALIBRATED) == set(detectors.KINDS) - {"threshold"}


@pytest.mark.parametrize("shift", [20.0, 990.0, -8.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kind", CALIBRATED)
def test_a_lasting_shift_is_alerted_at_its_onset_and_let_go_within_the_bound(kind, seed, shift):
    hits = flagged(detectors.create(kind).score(shifted(kind, seed, shift)))
    assert len(hits) and (hits >= ONSET).all()  # nothing before it
    assert hits[0] <= ONSET + (3 if shift > 0 else 10)  # 20 and 990 sd up; 8 sd down
    assert hits[-1] < ONSET + LET_GO_WITHIN[kind]


@pytest.mark.parametrize("kind", ["zscore", "mad", "ewma", "quantile"])
def test_a_smaller_adapt_after_lets_a_lasting_shift_go_sooner(kind):
    series = shifted(kind, 0, 990.0)
    default = flagged(detectors.create(kind, calibration="none").score(series))
    quick = flagged(detectors.create(kind, calibration="none", adapt_after=5).score(series))
    assert default[0] == quick[0] == ONSET
    assert quick[-1] < default[-1]
    # the first adapt_after points outside are still learned clipped: all of them are flagged
    assert list(quick[:6]) == list(range(ONSET, ONSET + 6))


@pytest.mark.parametrize("kind", CALIBRATED)
@pytest.mark.parametrize("cuts", [(ONSET + 3,), (ONSET + 15, ONSET + 31, ONSET + 32)])
def test_the_run_outside_the_band_carries_over_calls_and_restarts(kind, cuts):
    series = shifted(kind, 1, 990.0)
    params = {"calibration": "none", "adapt_after": 5}
    want = detectors.create(kind, **params).score(series)
    det = detectors.create(kind, **params)
    frames = []
    for a, b in itertools.pairwise([0, *cuts, len(series)]):
        det = detectors.from_state(json.loads(json.dumps(det.state())))
        frames.append(det.score(series.iloc[a:b]))
    got = pd.concat(frames)
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-9, equal_nan=True)
    out_run = det.state()["common"]["out_run"]
    assert isinstance(out_run, int) and out_run >= 0


@pytest.mark.parametrize("kind", ["zscore", "mad", "ewma", "quantile"])
def test_the_state_counts_the_points_outside_the_band_at_the_end_of_the_stream(kind):
    series = shifted(kind, 1, 990.0)
    det = detectors.create(kind, calibration="none").fit(series.iloc[: ONSET + 3])
    assert det.state()["common"]["out_run"] == 3
    det.fit(series.iloc[ONSET + 3 : ONSET + 3 + 500])  # long since the new normal
    assert det.state()["common"]["out_run"] == 0
