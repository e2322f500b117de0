"""auto: looks at the series, picks a period or none, says why in describe(); never blind."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from aiops import detectors
from aiops.errors import InvalidInput
from tests.unit.detectors.detectors_support import T0, daily, noise

DAYS = daily(10, seed=0)  # 15-minute points, a daily sine of amplitude 10 plus N(0, 1)
SMALL = {"window": 30, "decide_after": 200}  # 200 points of 15 minutes: just over two days
STEP = 900.0


def irregular_daily(n: int = 1000, seed: int = 0) -> pd.Series:
    """The same daily sine, sampled every 5 to 25 minutes at random."""
    rng = np.random.default_rng(seed)
    idx = T0 + pd.to_timedelta(np.cumsum(rng.integers(300, 1500, n)), unit="s")
    hours = (idx.hour + idx.minute / 60).to_numpy()
    values = 50 + 10 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 1, n)
    return pd.Series(values, index=idx)


def decided(series: pd.Series, **params) -> dict:
    det = detectors.create("auto", **params)
    det.fit(series)
    return det.describe()


def assert_same_frames(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert got.index.equals(want.index)
    np.testing.assert_allclose(
        got.to_numpy(), want.to_numpy(), rtol=1e-9, atol=1e-9, equal_nan=True
    )


@pytest.mark.parametrize("params", [{}, SMALL])
def test_a_daily_cycle_sampled_every_15_minutes_is_found_and_explained(params):
    info = decided(DAYS, **params)
    assert info["kind"] == "auto" and info["decided"] is True
    assert abs(info["period_seconds"] - 86_400) <= STEP  # one step either way
    assert info["period_points"] in (95, 96, 97)
    assert info["model"] == "seasonal difference + rolling median/MAD"
    assert info["sampling_step_seconds"] == STEP and info["regular_sampling"] is True
    assert info["autocorrelation"] >= 0.6
    assert info["decided_after_points"] == params.get("decide_after", 600)
    assert isinstance(info["reason"], str) and "repeats every 1 d" in info["reason"]
    json.dumps(info)  # plain JSON, for GET /api/detectors/{id}


def test_white_noise_has_no_period_and_says_so():
    info = decided(noise(1000, seed=3), period_search_seconds=0)
    assert info["decided"] is True
    assert info["period_seconds"] is None and info["period_points"] is None
    assert info["model"] == "rolling median/MAD"
    assert info["autocorrelation"] < 0.6
    assert info["reason"].startswith("no period (best autocorrelation")


def test_irregular_sampling_uses_no_period_and_says_why():
    info = decided(irregular_daily())
    assert info["decided"] is True and info["regular_sampling"] is False
    assert info["period_seconds"] is None and info["model"] == "rolling median/MAD"
    assert "the sampling is irregular, so it is not used" in info["reason"]


def test_until_it_has_looked_long_enough_it_scores_against_the_recent_past():
    det = detectors.create("auto")
    frame = det.score(DAYS.iloc[:199])
    info = det.describe()
    assert info["decided"] is False and info["model"] == "rolling median/MAD"
    assert "199 points seen" in info["reason"] and "at least 600" in info["reason"]
    # not blind meanwhile: a band from the first window's quarter of points on
    assert frame["expected"].iloc[60:].notna().all()
    spiked = DAYS.iloc[:199].copy()
    spiked.iloc[150] += 1000
    assert detectors.create("auto").score(spiked)["score"].iloc[150] > 1
    # the choice waits for two days of data as well as decide_after points
    short = detectors.create("auto", decide_after=16).fit(DAYS.iloc[:100])  # 25 hours
    assert short.describe()["decided"] is False
    assert short.fit(DAYS.iloc[100:200]).describe()["decided"] is True


def test_with_a_period_the_cycle_itself_is_never_an_anomaly_but_a_spike_is():
    x = DAYS.to_numpy().copy()
    x[800] += 15  # a 15 sd spike at some time of day
    frame = detectors.create("auto").score(pd.Series(x, index=DAYS.index))
    flagged = np.flatnonzero(frame["score"].to_numpy() > 1)
    assert 800 in flagged and (flagged >= 800).all() and (flagged <= 810).all()


@pytest.mark.parametrize(
    "cuts", [(100,), (199,), (200,), (201,), (100, 199, 200, 201), (1, 399, 400)]
)
def test_pieces_equal_the_whole_across_the_decision(cuts):
    want = detectors.create("auto", **SMALL).score(DAYS)
    det = detectors.create("auto", **SMALL)
    frames = []
    for a, b in itertools.pairwise([0, *cuts, len(DAYS)]):
        frames.append(det.score(DAYS.iloc[a:b]))
    assert_same_frames(pd.concat(frames), want)
    assert det.describe() == decided(DAYS, **SMALL)


@pytest.mark.parametrize("at", [0, 1, 150, 199, 200, 201, 500])
def test_state_round_trips_through_json_before_and_after_the_decision(at):
    det = detectors.create("auto", **SMALL).fit(DAYS.iloc[:at])
    text = json.dumps(det.state(), allow_nan=False)
    again = detectors.from_state(json.loads(text))
    assert again.state() == json.loads(text)
    assert again.describe() == det.describe()
    assert again.describe()["decided"] is (at >= 200)
    assert_same_frames(again.score(DAYS.iloc[at:]), det.score(DAYS.iloc[at:]))


def learned_state(at: int = 500) -> dict:
    det = detectors.create("auto", **SMALL).fit(DAYS.iloc[:at])
    return json.loads(json.dumps(det.state()))


@pytest.mark.parametrize(
    ("at", "change", "field"),
    [
        (150, {"buffer_ns": "x"}, "state.learned.buffer_ns"),
        (150, {"buffer_ns": [1.5]}, "state.learned.buffer_ns"),
        (150, {"buffer_ns": [True]}, "state.learned.buffer_ns"),
        (150, {"buffer": ["a"]}, "state.learned.buffer"),
        (150, {"buffer": [1.0]}, "state.learned"),  # times and values differ in length
        (150, {"buffer_ns": list(range(5000)), "buffer": [1.0] * 5000}, "state.learned.buffer_ns"),
        (500, {"history_ns": [1, 2], "history": [1.0]}, "state.learned"),
        (500, {"history": "x"}, "state.learned.history"),
        (500, {"tail": [1.0, None]}, "state.learned.tail"),
        (500, {"tail": [1.0] * 31, "abs_residuals": [1.0] * 31}, "state.learned.tail"),
        (500, {"abs_residuals": [1.0]}, "state.learned.tail"),  # not as many as tail
        (500, {"choice": "seasonal"}, "state.learned.choice"),
        (500, {"period_ns": -1}, "state.learned.period_ns"),
        (500, {"period_ns": "1 d"}, "state.learned.period_ns"),
        (500, {"tolerance_ns": -5}, "state.learned.period_ns"),
    ],
)
def test_malformed_learned_state_is_refused_naming_the_field(at, change, field):
    state = learned_state(at)
    state["learned"] = {**state["learned"], **change}
    with pytest.raises(InvalidInput) as info:
        detectors.from_state(state)
    assert info.value.field == field
