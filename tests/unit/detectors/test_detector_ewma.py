"""ewma: online exponentially weighted mean/variance; tiny state carried between runs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from aiops import detectors
from tests.unit.detectors.detectors_support import PLAIN, index, noise

CLEAN = noise(2000, seed=0)
BAND = {"calibration": "none"}  # the score is the band distance (floors, adaptation as default)


def flagged(frame: pd.DataFrame) -> list[int]:
    return np.flatnonzero(frame["score"].to_numpy() > 1).tolist()


def test_the_recursion_by_hand():
    det = detectors.create("ewma", alpha=0.5, min_periods=2, k=2.0, **PLAIN)
    frame = det.score(pd.Series([1.0, 2.0, 2.0, 9.0], index=index(4)))
    # m: 1 -> 1.5 (d=1, v=0.5*(0+0.5*1)=0.25) -> 1.75 (d=0.5, v=0.5*(0.25+0.5*0.25)=0.1875)
    assert frame["expected"].iloc[:2].isna().all()
    assert frame["expected"].iloc[2] == 1.5 and frame["upper"].iloc[2] == 1.5 + 2 * 0.5
    assert frame["expected"].iloc[3] == 1.75
    assert np.isclose(frame["upper"].iloc[3], 1.75 + 2 * np.sqrt(0.1875))
    assert frame["score"].iloc[3] > 1  # 9 is far outside; it is learned clipped to the band:
    clipped = frame["upper"].iloc[3]
    d = clipped - 1.75
    assert np.isclose(det.state()["learned"]["mean"], 1.75 + 0.5 * d)
    assert np.isclose(det.state()["learned"]["var"], 0.5 * (0.1875 + 0.5 * d * d))


def test_a_spike_is_outside_the_band_alone_and_a_level_shift_is_absorbed_quickly():
    x = CLEAN.to_numpy().copy()
    x[500] += 10
    spiked = pd.Series(x, index=CLEAN.index)
    assert flagged(detectors.create("ewma", **BAND).score(spiked)) == [500]
    y = CLEAN.to_numpy().copy()
    y[1000:] += 10
    frame = detectors.create("ewma", **BAND).score(pd.Series(y, index=CLEAN.index))
    hits = flagged(frame)
    assert hits[0] == 1000 and hits[-1] < 1010
    assert abs(frame["expected"].iloc[1300] - 20) < 0.5


def test_state_is_three_numbers_and_carries_over_between_runs():
    det = detectors.create("ewma").fit(CLEAN.iloc[:1000])
    state = det.state()
    assert set(state["learned"]) == {"mean", "var", "count"}
    later = detectors.from_state(state).score(CLEAN.iloc[1000:])
    pd.testing.assert_frame_equal(
        later, detectors.create("ewma").score(CLEAN).iloc[1000:], rtol=1e-12
    )
