"""The seasonal profile follows a local wall clock across DST changes when given a timezone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aiops import detectors
from aiops.errors import InvalidInput


def office_hours(tz: str, days: int, spike_day: int | None = None) -> pd.Series:
    """Load that is high from 09:00 to 17:00 local time, every 15 minutes, in UTC."""
    index = pd.date_range("2024-03-18", periods=days * 96, freq="15min", tz=tz)
    rng = np.random.default_rng(3)
    busy = (index.hour >= 9) & (index.hour < 17)
    values = np.where(busy, 100.0, 10.0) + rng.normal(0, 1, len(index))
    if spike_day is not None:
        values[spike_day * 96 + 12] += 60  # 03:00 local, a quiet hour
    return pd.Series(values, index=index.tz_convert("UTC"))


def flagged_after(series: pd.Series, start: str, **params) -> pd.Series:
    det = detectors.create("seasonal", bucket_minutes=60, min_periods=3, **params)
    scores = det.score(series)["score"]
    return scores[scores.index >= pd.Timestamp(start, tz="UTC")] > 1


def test_a_local_profile_survives_the_dst_change_and_utc_does_not():
    # Europe/Paris moves to summer time on 2024-03-31: office hours shift by an hour in UTC.
    series = office_hours("Europe/Paris", days=21)
    local = flagged_after(series, "2024-04-02", timezone="Europe/Paris", calibration="none")
    utc = flagged_after(series, "2024-04-02", calibration="none")
    assert local.sum() == 0
    assert utc.sum() > 0  # the UTC profile still expects the winter hours for a while
    assert flagged_after(series, "2024-04-02", timezone="Europe/Paris").sum() == 0


def test_a_spike_in_a_quiet_local_hour_is_still_found():
    series = office_hours("Europe/Paris", days=21, spike_day=18)
    flagged = flagged_after(series, "2024-04-02", timezone="Europe/Paris")
    assert list(flagged[flagged].index) == [series.index[18 * 96 + 12]]


def test_state_round_trips_and_unknown_zones_are_refused():
    det = detectors.create("seasonal", timezone="America/New_York")
    det.fit(office_hours("America/New_York", days=4))
    again = detectors.from_state(det.state())
    assert again.params["timezone"] == "America/New_York"
    with pytest.raises(InvalidInput) as err:
        detectors.create("seasonal", timezone="Mars/Olympus")
    assert err.value.field == "params.timezone"
