"""aiops.incidents on the time axis (``follow``): onsets and resolutions where the pure
definition puts them, missing steps as normal points, and pieces equal to the whole."""

from __future__ import annotations

import numpy as np
import pytest

from aiops.errors import InvalidInput
from aiops.incidents import IncidentTracker, follow, onsets

STEP = 60.0


def merged(changes) -> dict[float, dict]:
    """Per incident (its opened_at): opened?, last anomalous, resolved, points."""
    out: dict[float, dict] = {}
    for c in changes:
        item = out.setdefault(
            c.opened_at, {"opened": False, "last": None, "resolved": None, "points": 0}
        )
        item["opened"] |= c.opened
        item["last"] = c.last_anomalous_at if c.last_anomalous_at is not None else item["last"]
        item["resolved"] = c.resolved_at if c.resolved_at is not None else item["resolved"]
        item["points"] += c.points
    return out


def test_an_incident_opens_at_its_first_point_and_resolves_at_the_gap_that_is_too_long():
    scores = np.array([0, 3, 0, 0, 2, 0, 0, 0, 0])
    t = np.arange(len(scores)) * STEP
    changes, state = follow(None, t, scores, threshold=1.0, resolve_after=2, step=STEP, until=t[-1])
    (c,) = changes
    assert (c.opened_at, c.opened, c.last_anomalous_at, c.resolved_at, c.points) == (
        60,
        True,
        240,
        420,
        2,
    )
    assert c.peak == 1  # the highest score, as a position in the input
    assert state["open"] is False and state["last_ts"] == t[-1]


def test_missing_steps_count_as_normal_points():
    # two points, three missing steps between them: more than resolve_after=2 -> two incidents
    changes, _ = follow(
        None,
        np.array([0.0, 240.0]),
        np.array([5.0, 5.0]),
        threshold=1.0,
        resolve_after=2,
        step=STEP,
        until=240.0,
    )
    assert [(c.opened_at, c.resolved_at) for c in changes] == [(0.0, 180.0), (240.0, None)]
    # a series that stops reporting resolves once `until` is past the gap
    _, state = follow(
        None, np.array([0.0]), np.array([5.0]), threshold=1.0, resolve_after=2, step=STEP, until=0.0
    )
    changes, state = follow(
        state, np.zeros(0), np.zeros(0), threshold=1.0, resolve_after=2, step=STEP, until=600.0
    )
    assert [(c.opened_at, c.opened, c.resolved_at, c.points) for c in changes] == [
        (0.0, False, 180.0, 0)
    ]
    assert state["open"] is False


def test_points_already_grouped_are_ignored():
    t = np.arange(5) * STEP
    scores = np.array([0, 3, 3, 0, 0])
    _, state = follow(None, t, scores, threshold=1.0, resolve_after=5, step=STEP, until=t[-1])
    again, same = follow(state, t, scores, threshold=1.0, resolve_after=5, step=STEP, until=t[-1])
    assert again == [] and same == state


@pytest.mark.parametrize("seed", range(20))
def test_pieces_equal_the_whole_and_the_pure_definition(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 300))
    grid = np.arange(n) * STEP
    present = rng.random(n) > 0.15
    scores = np.where(rng.random(n) > 0.85, 1.0 + 4 * rng.random(n), 0.5 * rng.random(n))
    r = int(rng.integers(0, 8))
    t, s = grid[present], scores[present]
    whole, whole_state = follow(
        None, t, s, threshold=1.0, resolve_after=r, step=STEP, until=grid[-1]
    )
    state, parts = None, []
    bounds = [0, *sorted(set(rng.integers(1, n, 4).tolist())), n]
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        inside = (t >= grid[a]) & (t <= grid[b - 1])
        changes, state = follow(
            state,
            t[inside],
            s[inside],
            threshold=1.0,
            resolve_after=r,
            step=STEP,
            until=grid[b - 1],
        )
        parts += changes
    assert merged(parts) == merged(whole) and state == whole_state
    dense = np.zeros(n, dtype=bool)
    dense[present] = scores[present] > 1.0
    assert sorted(merged(whole)) == [grid[i] for i in onsets(dense, r)]
    # the resolutions are where the tracker over the dense grid puts them
    spans = IncidentTracker(r).feed(dense)
    assert [grid[x.resolved] if x.resolved >= 0 else None for x in spans] == [
        v["resolved"] for v in merged(whole).values()
    ]


def test_the_detectors_resolve_after_wins_and_bad_values_name_the_field():
    _, state = follow(
        None,
        np.array([0.0]),
        np.array([5.0]),
        threshold=1.0,
        resolve_after=10,
        step=STEP,
        until=0.0,
    )
    changes, _ = follow(
        state,
        np.array([60.0, 120.0]),
        np.array([0.0, 0.0]),
        threshold=1.0,
        resolve_after=1,
        step=STEP,
        until=120.0,
    )
    assert [c.resolved_at for c in changes] == [120.0]
    with pytest.raises(InvalidInput) as err:
        follow(None, np.zeros(0), np.zeros(0), threshold=1.0, resolve_after=-1)
    assert err.value.field == "resolve_after"
