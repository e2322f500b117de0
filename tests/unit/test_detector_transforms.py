"""A detector's transform steps: validated when saved (the field named), and applied so that
the points scored do not depend on where time is cut into windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from aiops.errors import InvalidInput
from aiops.pipeline import run_detection
from aiops.store import DetectorSpec, Store
from aiops.tick import transformed_piece
from aiops.transform import history_seconds, output_step, standardize, validate_steps

STEPS = [
    {"op": "resample", "step": "5m", "how": "avg"},
    {"op": "rolling", "window": "10m", "how": "avg"},
    {"op": "aggregate", "how": "sum", "by": ["job"]},
]
T0 = datetime(2024, 1, 1, tzinfo=UTC)
STEP = 60.0


def frame(minutes: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    ts = [T0 + timedelta(minutes=m) for m in range(minutes)]
    parts = []
    for instance in ("a", "b"):
        values = 10 + rng.normal(0, 1, minutes)
        values[400:410] += 25  # a burst every window size sees
        parts.append(
            pd.DataFrame({"timestamp": ts, "value": values, "job": "api", "instance": instance})
        )
    return pd.concat(parts, ignore_index=True)


def score(piece: pd.DataFrame, states: dict, incidents: dict, end: datetime):
    run = run_detection(
        detector_id="d",
        kind="zscore",
        params={"window": 12, "calibration": "none"},
        threshold=1.0,
        mode="running",
        frame=piece,
        states=states,
        incident_states=incidents,
        step=output_step(validate_steps(STEPS), STEP),
        until=end,
    )
    for key, (_labels, state) in run.states.items():
        states[key] = state
    for key, (_labels, state) in run.incident_states.items():
        incidents[key] = state
    return run


def scored_in_windows(
    raw: pd.DataFrame, start: datetime, end: datetime, minutes: int
) -> list[tuple]:
    steps = validate_steps(STEPS, step=STEP)
    history = timedelta(seconds=history_seconds(steps))
    states: dict = {}
    incidents: dict = {}
    events = []
    a = start
    while a <= end:
        b = min(end, a + timedelta(minutes=minutes) - timedelta(seconds=STEP))
        collected = raw[(raw["timestamp"] >= a - history) & (raw["timestamp"] <= b)]
        piece = transformed_piece(
            standardize(collected, step=STEP), steps, step=STEP, start=a, end=b
        )
        events += [
            (e["ts"], e["type"], round(e["score"] or 0, 9))
            for e in score(piece, states, incidents, b).events
        ]
        a = b + timedelta(seconds=STEP)
    return events


def test_a_transformed_detector_scores_the_same_in_one_window_and_in_many_ticks():
    raw = frame()
    start, end = T0 + timedelta(minutes=60), T0 + timedelta(minutes=599)
    whole = scored_in_windows(raw, start, end, minutes=600)
    assert any(kind == "anomaly" for _, kind, _ in whole)
    for minutes in (3, 7, 13):  # windows cut inside resample buckets and rolling windows
        assert scored_in_windows(raw, start, end, minutes) == whole, minutes


def test_a_resample_bucket_is_stamped_with_its_last_step_and_never_half_filled():
    raw = frame(30)
    steps = validate_steps([{"op": "resample", "step": "5m", "how": "count"}], step=STEP)
    piece = transformed_piece(
        standardize(raw, step=STEP), steps, step=STEP, start=T0, end=T0 + timedelta(minutes=12)
    )
    assert list(piece["timestamp"].drop_duplicates()) == [
        T0 + timedelta(minutes=4),
        T0 + timedelta(minutes=9),
    ]
    assert set(piece["value"]) == {5.0}  # the bucket of minutes 10-14 is not out yet


@pytest.mark.parametrize(
    ("steps", "field"),
    [
        ([{"op": "smooth"}], "transforms[0].op"),
        ([{"op": "resample"}], "transforms[0].step"),
        ([{"op": "rolling", "window": "soon"}], "transforms[0].window"),
        (
            [{"op": "resample", "step": "5m"}, {"op": "aggregate", "how": "mode"}],
            "transforms[1].how",
        ),
        ([{"op": "aggregate", "by": "job"}], "transforms[0].by"),
        ([{"op": "rolling", "window": "5m", "step": "1m"}], "transforms[0].step"),
        (
            [{"op": "resample", "step": "90s"}],
            "transforms[0].step",
        ),  # not a multiple of the 60 s step
    ],
)
def test_bad_steps_are_refused_naming_the_field(steps, field):
    with pytest.raises(InvalidInput) as caught:
        validate_steps(steps, step=STEP)
    assert caught.value.field == field and field in caught.value.message


def test_steps_are_stored_and_their_change_resets_the_model(tmp_path):
    with Store.open(f"sqlite:///{tmp_path / 'aiops.db'}") as db:
        spec = {
            "id": "d",
            "kind": "zscore",
            "datasource": {"name": "prometheus", "query": "up", "step": 60},
            "transforms": STEPS,
        }
        saved = db.create_detector(spec)
        assert saved.transforms == validate_steps(STEPS) and saved.transforms[0]["step"] == 300.0
        plain = DetectorSpec.model_validate({**spec, "transforms": []})
        assert plain.spec_hash != saved.spec_hash
        changed = db.update_detector("d", transforms=STEPS[:1])
        assert (
            changed.transforms == validate_steps(STEPS[:1]) and changed.spec_hash != saved.spec_hash
        )
        with pytest.raises(InvalidInput, match=r"transforms\[0\]\.op"):
            db.create_detector({**spec, "id": "e", "transforms": [{"op": "smooth"}]})
