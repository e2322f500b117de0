"""One contract, every kind: the same checks run over ``aiops.detectors.KINDS``."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiops import detectors
from aiops.detectors import COLUMNS, MAX_SCORE
from tests.unit.detectors.detectors_support import (
    CONTRACT_PARAMS,
    T0,
    WARM_UP,
    contract_series,
    index,
    plain,
)

SERIES = contract_series()


def make(kind: str, **extra) -> detectors.Detector:
    return detectors.create(kind, **{**CONTRACT_PARAMS[kind], **extra})


@pytest.fixture(scope="module")
def one_shot() -> dict[str, pd.DataFrame]:
    return {kind: make(kind).score(SERIES) for kind in detectors.KINDS}


@pytest.fixture(scope="module")
def plain_shot() -> dict[str, pd.DataFrame]:
    """Floors, adaptation and calibration off: the score is the kind's own band distance."""
    return {kind: make(kind, **plain(kind)).score(SERIES) for kind in detectors.KINDS}


def assert_same_frames(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert got.index.equals(want.index)
    assert list(got.columns) == list(want.columns)
    np.testing.assert_allclose(
        got.to_numpy(), want.to_numpy(), rtol=1e-9, atol=1e-9, equal_nan=True
    )


def json_round_trip(state: dict) -> dict:
    return json.loads(json.dumps(state, allow_nan=False))


def test_every_kind_is_covered_by_the_contract_settings():
    assert set(CONTRACT_PARAMS) == set(detectors.KINDS) == set(WARM_UP)
    assert isinstance(detectors.KINDS, tuple) and all(isinstance(k, str) for k in detectors.KINDS)


@pytest.mark.parametrize("kind", detectors.KINDS)
def test_score_returns_the_four_columns_on_the_input_index(kind, one_shot):
    frame = one_shot[kind]
    assert frame.index.equals(SERIES.index)
    assert tuple(frame.columns) == COLUMNS
    assert all(dtype == np.float64 for dtype in frame.dtypes)
    det = make(kind)
    assert det.kind == kind


@pytest.mark.parametrize("kind", detectors.KINDS)
def test_input_is_not_mutated(kind):
    series = SERIES.copy()
    values = series.to_numpy().copy()
    det = make(kind)
    det.fit(series.iloc[:3000])
    det.score(series.iloc[3000:])
    np.testing.assert_array_equal(series.to_numpy(), values)
    assert series.index.equals(SERIES.index)


@pytest.mark.parametrize("kind", detectors.KINDS)
def test_scores_are_finite_and_non_negative(kind, one_shot):
    score = one_shot[kind]["score"].to_numpy()
    assert np.isfinite(score).all()
    assert (score >= 0).all() and (score <= MAX_SCORE).all()


@pytest.mark.parametrize("kind", detectors.KINDS)
def test_same_input_same_result(kind, one_shot):
    pd.testing.assert_frame_equal(make(kind).score(SERIES), one_shot[kind], check_exact=True)


@pytest.mark.parametrize("kind", detectors.KINDS)
def test_warm_up_is_neutral(kind, one_shot):
    frame = one_shot[kind]
    warm = WARM_UP[kind]
    assert (frame["score"].iloc[:warm] == 0).all()
    assert frame[["expected", "lower", "upper"]].iloc[:warm].isna().all().all()
    assert frame["expected"].iloc[warm:].notna().mean() > 0.9  # and then it scores


@pytest.mark.parametrize("kind", detectors.KINDS)
def test_score_is_at_most_one_exactly_inside_the_band(kind, plain_shot):
    frame = plain_shot[kind]
    x = SERIES.to_numpy()
    score = frame["score"].to_numpy()
    lower, upper = frame["lower"].to_numpy(), frame["upper"].to_numpy()
    banded = np.isfinite(x) & ~np.isnan(lower) & ~np.isnan(upper)
    inside = (x >= lower) & (x <= upper)
    np.testing.assert_array_equal((score <= 1)[banded], inside[banded])
    assert (score[~banded] == 0).all()  # missing value or warm-up: neutral
    expected = frame["expected"].to_numpy()
    assert ((lower <= expected) & (expected <= upper))[banded].all()
    assert (score > 1).sum() >= 10  # the spikes are found


@pytest.mark.parametrize("kind", detectors.KINDS)
def test_missing_values_score_zero_and_are_skipped(kind, one_shot):
    frame = one_shot[kind]
    missing = ~np.isfinite(SERIES.to_numpy())
    assert missing.sum() == 31
    assert (frame["score"][missing] == 0).all()
    assert frame[["expected", "lower", "upper"]][missing].isna().all().all()
    # the same stream without those points scores every other point the same
    assert_same_frames(make(kind).score(SERIES[~missing]), frame[~missing])


@pytest.mark.parametrize("kind", detectors.KINDS)
@pytest.mark.parametrize("cuts", [(1,), (17, 18, 19), (1440, 2880), (500, 4000, 5759)])
def test_scoring_in_pieces_equals_scoring_at_once(kind, cuts, one_shot):
    det = make(kind)
    bounds = [0, *cuts, len(SERIES)]
    pieces = [det.score(SERIES.iloc[a:b]) for a, b in itertools.pairwise(bounds)]
    assert_same_frames(pd.concat(pieces), one_shot[kind])


@pytest.mark.parametrize("kind", detectors.KINDS)
def test_fit_then_score_equals_scoring_everything(kind, one_shot):
    det = make(kind).fit(SERIES.iloc[:3500])
    assert_same_frames(det.score(SERIES.iloc[3500:]), one_shot[kind].iloc[3500:])


@pytest.mark.parametrize("kind", detectors.KINDS)
@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_split_scores_like_one_call(kind, one_shot, data):
    cuts = sorted(data.draw(st.sets(st.integers(1, len(SERIES) - 1), min_size=1, max_size=6)))
    det = make(kind)
    bounds = [0, *cuts, len(SERIES)]
    frames = []
    for a, b in itertools.pairwise(bounds):
        det = detectors.from_state(json_round_trip(det.state()))  # a new process per piece
        frames.append(det.score(SERIES.iloc[a:b]))
    assert_same_frames(pd.concat(frames), one_shot[kind])


@pytest.mark.parametrize("kind", detectors.KINDS)
@pytest.mark.parametrize("at", [0, 5, 2000, 5000])
def test_state_round_trips_through_json(kind, at, one_shot):
    det = make(kind)
    det.fit(SERIES.iloc[:at])
    state = det.state()
    text = json.dumps(state, allow_nan=False)  # strict JSON: no NaN / Infinity
    restored = detectors.from_state(json.loads(text))
    assert restored.state() == json.loads(text)
    assert (restored.kind, restored.params, restored.params_hash()) == (
        kind,
        det.params,
        det.params_hash(),
    )
    assert {"kind", "version", "params", "learned"} <= set(state)
    assert_same_frames(restored.score(SERIES.iloc[at:]), det.score(SERIES.iloc[at:]))
    assert_same_frames(det.score(SERIES.iloc[:0]), one_shot[kind].iloc[:0])


@pytest.mark.parametrize("kind", detectors.KINDS)
def test_a_huge_spike_does_not_poison_later_bands(kind):
    # band distances (calibration off) with every floor and the adaptation at their defaults:
    # the floors' slow averages must not learn the glitch either
    extra = {} if kind == "threshold" else {"calibration": "none"}
    clean = SERIES.iloc[3000:3600].copy()
    spiked = clean.copy()
    spiked.iloc[200] = 1e9
    det_clean = make(kind, **extra).fit(SERIES.iloc[:3000])
    det_spiked = make(kind, **extra).fit(SERIES.iloc[:3000])
    want, got = det_clean.score(clean), det_spiked.score(spiked)
    assert got["score"].iloc[200] > 1e6
    width = (want["upper"] - want["lower"]).iloc[201:].dropna()  # (missing values: no band)
    drift = (got[["lower", "upper"]] - want[["lower", "upper"]]).abs().max(axis=1).iloc[201:]
    assert len(width) > 350
    assert (drift[width.index] <= 0.5 * width).all()
    assert ((got["score"] > 1) == (want["score"] > 1)).iloc[201:].mean() > 0.99


@pytest.mark.parametrize("kind", [k for k in detectors.KINDS if k != "threshold"])
def test_calibration_changes_the_score_and_nothing_else(kind, one_shot):
    none = make(kind, calibration="none").score(SERIES)
    calibrated = one_shot[kind]
    pd.testing.assert_frame_equal(
        calibrated[["expected", "lower", "upper"]], none[["expected", "lower", "upper"]]
    )
    assert not np.array_equal(calibrated["score"].to_numpy(), none["score"].to_numpy())
    # calibrated scores stay in range and, on this spiky series, alert less often
    score = calibrated["score"].to_numpy()
    assert np.isfinite(score).all() and (score >= 0).all()
    assert (score > 1).sum() < (none["score"] > 1).sum()


@pytest.mark.parametrize("kind", detectors.KINDS)
def test_params_hash_is_stable_and_names_the_behaviour(kind):
    a, b = make(kind), detectors.create(kind, **CONTRACT_PARAMS[kind])
    assert a.params_hash() == b.params_hash()
    assert len(a.params_hash()) == 64 and int(a.params_hash(), 16) >= 0
    spelled_out = detectors.create(kind, **a.params)  # defaults written out: same behaviour
    assert spelled_out.params_hash() == a.params_hash()
    others = {k: detectors.create(k, **CONTRACT_PARAMS[k]).params_hash() for k in detectors.KINDS}
    assert len(set(others.values())) == len(others)


# ---- edge cases: documented behaviour, no crash, for every kind


def band_distance(kind: str) -> dict:
    return {} if kind == "threshold" else {"calibration": "none"}


@pytest.mark.parametrize("kind", detectors.KINDS)
def test_a_constant_series_never_alerts(kind):
    constant = pd.Series(5.0, index=index(3 * 1440))  # three days: seasonal gets its visits
    frame = make(kind, **band_distance(kind)).score(constant)
    assert (frame["score"] == 0).all()  # every value is exactly the expected one
    banded = frame["upper"].notna()
    assert banded.mean() > 0.3
    assert (frame["upper"][banded] >= 5.0).all() and (frame["lower"][banded] <= 5.0).all()
    if kind != "threshold":  # (a fixed rule: its expected value is the middle of its band)
        assert (frame["expected"][banded] == 5.0).all()
    calibrated = make(kind).score(constant)["score"]
    # calibrated: the recent distances are exactly their long-run mean, a tail of 1/2
    p = make(kind).params.get("alert_probability")
    top = 0.0 if p is None else np.log(0.5) / np.log(p)
    assert calibrated.max() <= top + 1e-12 and top < 1


@pytest.mark.parametrize("kind", detectors.KINDS)
def test_all_missing_input_scores_zero_and_learns_nothing(kind):
    missing = pd.Series(np.nan, index=SERIES.index[:500])
    missing.iloc[::7] = np.inf  # +-inf is missing too
    det = make(kind)
    fresh = det.state()
    frame = det.score(missing)
    assert (frame["score"] == 0).all() and frame[["expected", "lower", "upper"]].isna().all().all()
    state = det.state()
    assert state["learned"] == fresh["learned"] and state.get("common") == fresh.get("common")
    assert state["n_seen"] == 500 and det.last_timestamp == missing.index[-1]
    # and then it goes on as if those points had never come
    rest = SERIES.iloc[500:]
    assert_same_frames(det.score(rest), make(kind).score(rest))


@pytest.mark.parametrize("kind", detectors.KINDS)
def test_a_single_point_is_warm_up_or_a_fixed_rule_and_round_trips(kind):
    det = make(kind)
    frame = det.score(SERIES.iloc[:1])
    if kind == "threshold":
        assert frame["score"].iloc[0] == 0 and frame["upper"].iloc[0] == 18.0
    else:
        assert (
            frame["score"].iloc[0] == 0
            and frame[["expected", "lower", "upper"]].isna().all(axis=1).iloc[0]
        )
    again = detectors.from_state(json_round_trip(det.state()))
    assert_same_frames(again.score(SERIES.iloc[1:]), one_shot_of(kind).iloc[1:])


def one_shot_of(kind: str) -> pd.DataFrame:
    return make(kind).score(SERIES)


@pytest.mark.parametrize("kind", detectors.KINDS)
def test_a_missing_hour_is_skipped_and_pieces_still_equal_the_whole(kind):
    gap = (SERIES.index >= SERIES.index[2000]) & (SERIES.index < SERIES.index[2060])
    holed = SERIES[~gap]
    whole = make(kind).score(holed)
    assert whole.index.equals(holed.index)
    assert np.isfinite(whole["score"]).all() and (whole["score"] >= 0).all()
    assert whole["expected"].iloc[3000:].notna().mean() > 0.9  # it scores on after the hole
    det = make(kind)
    cut = int(np.searchsorted(holed.index, SERIES.index[2060]))  # right after the hole
    pieces = pd.concat([det.score(holed.iloc[:cut]), det.score(holed.iloc[cut:])])
    assert_same_frames(pieces, whole)


@pytest.mark.parametrize("kind", detectors.KINDS)
def test_irregular_sampling_is_scored_causally(kind):
    rng = np.random.default_rng(4)
    seconds = np.cumsum(rng.integers(5, 180, len(SERIES)))  # 5 s to 3 min apart
    irregular = pd.Series(SERIES.to_numpy(), index=T0 + pd.to_timedelta(seconds, unit="s"))
    whole = make(kind).score(irregular)
    assert np.isfinite(whole["score"]).all() and (whole["score"] >= 0).all()
    det = make(kind)
    cuts = [0, 999, 1000, 3333, len(irregular)]
    pieces = pd.concat([det.score(irregular.iloc[a:b]) for a, b in itertools.pairwise(cuts)])
    assert_same_frames(pieces, whole)
