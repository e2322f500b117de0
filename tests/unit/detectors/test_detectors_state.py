"""The shared state of every calibrated kind (``state["common"]``): floors, calibration, the
run outside the band. It is plain JSON, continues exactly, is optional (older states) and is
checked field by field."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aiops import detectors
from aiops.errors import InvalidInput
from tests.unit.detectors.detectors_support import CONTRACT_PARAMS, contract_series

SERIES = contract_series()
CALIBRATED = [kind for kind in detectors.KINDS if kind != "threshold"]
COMMON_FIELDS = {
    "prev",
    "resolution",
    "level",
    "spread",
    "cal_mean",
    "cal_var",
    "cal_count",
    "cal_tail",
    "out_run",
}


def make(kind: str) -> detectors.Detector:
    return detectors.create(kind, **CONTRACT_PARAMS[kind])


def saved(kind: str, at: int = 3000) -> dict:
    return json.loads(json.dumps(make(kind).fit(SERIES.iloc[:at]).state(), allow_nan=False))


@pytest.mark.parametrize("kind", CALIBRATED)
def test_the_common_state_is_plain_json_and_continues_identically(kind):
    det = make(kind).fit(SERIES.iloc[:3000])
    state = det.state()
    common = state["common"]
    assert set(common) == COMMON_FIELDS
    assert json.loads(json.dumps(state, allow_nan=False)) == state  # nothing numpy in there
    assert isinstance(common["cal_count"], int) and common["cal_count"] > 0
    assert isinstance(common["out_run"], int)
    assert len(common["cal_tail"]) == 10  # the last short_window scaled distances
    assert common["resolution"] > 0 and common["level"] > 0 and common["spread"] > 0
    again = detectors.from_state(json.loads(json.dumps(state)))
    assert again.state()["common"] == common
    rest = SERIES.iloc[3000:]
    want = make(kind).score(SERIES).iloc[3000:]
    np.testing.assert_allclose(
        again.score(rest).to_numpy(), want.to_numpy(), rtol=1e-9, atol=1e-9, equal_nan=True
    )


def test_threshold_has_no_common_state():
    det = detectors.create("threshold", upper=1.0).fit(SERIES.iloc[:10])
    assert "common" not in det.state()


@pytest.mark.parametrize("kind", CALIBRATED)
def test_a_state_from_before_the_shared_floors_loads_and_starts_them_fresh(kind):
    state = saved(kind)
    del state["common"]
    old = detectors.from_state(state)
    fresh = make(kind).state()["common"]
    assert old.state()["common"] == fresh
    assert old.state()["learned"] == state["learned"]
    frame = old.score(SERIES.iloc[3000:])  # it scores on; floors and calibration relearn
    assert np.isfinite(frame["score"]).all()
    assert (frame["score"].iloc[:20] == 0).all()  # the calibration warms up again


@pytest.mark.parametrize("kind", CALIBRATED)
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ("not a dict", "state.common"),
        ({"cal_count": -1}, "state.common.cal_count"),
        ({"cal_count": "7"}, "state.common.cal_count"),
        ({"cal_count": 2.5}, "state.common.cal_count"),
        ({"cal_count": True}, "state.common.cal_count"),
        ({"out_run": -3}, "state.common.out_run"),
        ({"out_run": "3"}, "state.common.out_run"),
        ({"prev": "5.0"}, "state.common.prev"),
        ({"resolution": [1.0]}, "state.common.resolution"),
        ({"level": "high"}, "state.common.level"),
        ({"spread": True}, "state.common.spread"),
        ({"cal_mean": "0.1"}, "state.common.cal_mean"),
        ({"cal_var": {}}, "state.common.cal_var"),
        ({"cal_tail": "x"}, "state.common.cal_tail"),
        ({"cal_tail": [0.1, None]}, "state.common.cal_tail"),
        ({"cal_tail": ["a"]}, "state.common.cal_tail"),
        ({"cal_tail": [0.0] * 11}, "state.common.cal_tail"),  # longer than short_window
    ],
)
def test_malformed_common_state_is_refused_naming_the_field(kind, change, field):
    state = saved(kind)
    state["common"] = change if isinstance(change, str) else {**state["common"], **change}
    with pytest.raises(InvalidInput) as info:
        detectors.from_state(state)
    assert info.value.field == field


@pytest.mark.parametrize("kind", CALIBRATED)
def test_changed_shared_settings_in_a_saved_state_are_checked_too(kind):
    state = saved(kind, at=100)
    state["params"] = {**state["params"], "calibration": "sometimes"}
    with pytest.raises(InvalidInput) as info:
        detectors.from_state(state)
    assert info.value.field == "params.calibration"


@pytest.mark.parametrize("kind", CALIBRATED)
def test_the_floors_are_learned_whatever_the_floor_settings(kind):
    # "a setting changed later finds them ready": the averages do not depend on the factors
    on = make(kind).fit(SERIES.iloc[:2000]).state()["common"]
    off = detectors.create(
        kind, **CONTRACT_PARAMS[kind], resolution_floor=0.0, level_floor=0.0, spread_floor=0.0
    )
    off_common = off.fit(SERIES.iloc[:2000]).state()["common"]
    for name in ("prev", "resolution", "level", "spread"):
        assert off_common[name] == pytest.approx(on[name], rel=1e-12)
