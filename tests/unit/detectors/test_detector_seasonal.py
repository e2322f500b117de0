"""seasonal: per time-of-day (and day-of-week) bucket profile, learned per period."""

from __future__ import annotations

import numpy as np
import pandas as pd

from aiops import detectors
from tests.unit.detectors.detectors_support import daily, index

DAYS = daily(14, seed=0)  # 15-minute points, 50 + 10 sin(2 pi h / 24) + N(0, 1)
PER_DAY = 96
BAND = {"calibration": "none"}  # the score is the band distance (floors as default)


def flagged(frame: pd.DataFrame) -> list[int]:
    return np.flatnonzero(frame["score"].to_numpy() > 1).tolist()


def test_a_clean_daily_pattern_is_quiet_after_warm_up():
    frame = detectors.create("seasonal").score(DAYS)
    assert frame["expected"].iloc[: 3 * PER_DAY].isna().all()  # min_periods=3 visits per bucket
    assert frame["expected"].iloc[3 * PER_DAY :].notna().all()
    assert flagged(frame) == []
    assert flagged(detectors.create("seasonal", **BAND).score(DAYS)) == []


def test_a_value_normal_at_one_time_of_day_is_anomalous_at_another():
    x = DAYS.to_numpy().copy()
    day6 = 6 * PER_DAY
    x[day6 + 18 * 4] = 60.0  # 18:00 is the trough (about 40): 60 is anomalous there
    x[day6 + 6 * 4] = 60.0  # 06:00 is the peak (about 60): normal
    frame = detectors.create("seasonal", **BAND).score(pd.Series(x, index=DAYS.index))
    assert flagged(frame) == [day6 + 18 * 4]
    assert abs(frame["expected"].iloc[day6 + 18 * 4] - 40) < 1
    assert abs(frame["expected"].iloc[day6 + 6 * 4] - 60) < 1


def test_a_spike_does_not_move_the_profile():
    x = DAYS.to_numpy().copy()
    at = 5 * PER_DAY + 40
    x[at] = 1e6
    det = detectors.create("seasonal", **BAND)
    frame = det.score(pd.Series(x, index=DAYS.index))
    clean = detectors.create("seasonal", **BAND).fit(DAYS)
    assert frame["score"].iloc[at] > 1e4 and flagged(frame) == [at]
    got, want = det.state()["learned"]["location"][40], clean.state()["learned"]["location"][40]
    assert abs(got - want) < 2  # learned clipped to the band, not 1e6


def test_a_level_shift_is_flagged_for_at_most_two_days_then_learned():
    x = DAYS.to_numpy().copy()
    x[8 * PER_DAY :] += 10
    shifted = pd.Series(x, index=DAYS.index)
    hits = flagged(detectors.create("seasonal", **BAND).score(shifted))
    assert hits[0] == 8 * PER_DAY
    assert hits[-1] < 10 * PER_DAY
    # calibrated (the default): alerted within a few points, over within the same two days
    hits = flagged(detectors.create("seasonal").score(shifted))
    assert 8 * PER_DAY <= hits[0] <= 8 * PER_DAY + 3
    assert hits[-1] < 10 * PER_DAY


def test_weekly_profile_learns_the_weekend():
    n = 5 * 7 * 24 * 4
    idx = index(n, "15min")  # starts on a Monday
    rng = np.random.default_rng(0)
    values = 50 + rng.normal(0, 1, n)
    values[idx.day_of_week >= 5] -= 20
    series = pd.Series(values, index=idx)
    weekly = detectors.create("seasonal", period="week", bucket_minutes=60).score(series)
    assert flagged(weekly) == []
    assert abs(weekly["expected"].iloc[-1] - 30) < 1  # Sunday evening: the weekend level
    daily_only = detectors.create("seasonal", bucket_minutes=60, **BAND).score(series)
    assert len(flagged(daily_only)) > 50  # a daily profile cannot know Saturday from Friday


def test_the_open_period_is_part_of_the_state():
    det = detectors.create("seasonal").fit(DAYS.iloc[: 5 * PER_DAY + 10])
    learned = det.state()["learned"]
    assert learned["open"]["bucket"] == list(range(10))
    assert learned["open"]["count"] == [1] * 10
    assert learned["period"] == (DAYS.index[5 * PER_DAY].value // (86_400 * 10**9))
