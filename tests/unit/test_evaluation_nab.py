"""The NAB score (aiops.evaluation.nab_score) on hand-made series with hand-computed values.

NAB's scaled sigmoid is ``S(x) = 2 / (1 + exp(5x)) - 1 = tanh(-5x / 2)``; a detection in a
window of width ``w`` at ``k`` rows before its right edge is worth ``S(-(k + 1) / w) / S(-1)``;
one outside, ``d`` window-widths-minus-one after the preceding window, costs ``fp * S(d)``
(``-fp`` with no window before it).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from aiops.errors import InvalidInput
from aiops.incidents import DEFAULT_RESOLVE_AFTER
from aiops.evaluation import (
    NAB_PROFILES,
    NabSeries,
    incident_onsets,
    nab_evaluate,
    nab_probation_rows,
    nab_score,
    nab_score_rows,
    parse_labels_json,
)

S_LEFT = math.tanh(2.5)  # S(-1)


def flags(n: int, *rows: int) -> np.ndarray:
    out = np.zeros(n)
    out[list(rows)] = 1.0
    return out


def std(series, scores, **kw):
    return nab_score(series, scores, **kw)["standard"]


def test_the_earliest_detection_in_a_window_counts_and_earlier_is_worth_more():
    s = NabSeries(10, ((4, 5),))
    left = std([s], [flags(10, 4, 5)])  # both rows flagged: only the left edge counts
    assert left.raw == pytest.approx(1.0)
    assert (left.null, left.perfect, left.normalized) == (-1.0, 1.0, pytest.approx(100.0))
    assert (left.detected_windows, left.detections, left.false_detections) == (1, 2, 0)
    late = std([s], [flags(10, 5)])  # half-way: S(-0.5) / S(-1)
    assert late.raw == pytest.approx(math.tanh(1.25) / S_LEFT)  # 0.8598
    assert late.normalized == pytest.approx(100 * (0.859792 + 1) / 2, abs=1e-3)


def test_false_positives_cost_less_just_after_a_window():
    s = NabSeries(20, ((2, 5),))  # width 4: distances in units of 3 rows
    # before any window: the full cost; the window is missed
    before = std([s], [flags(20, 0)])
    assert before.raw == pytest.approx(-1 - 0.11)
    assert before.normalized == pytest.approx(-5.5)
    # one row after the window: d = 1/3, cost 0.11 * tanh(5/6); the window found at its edge
    after = std([s], [flags(20, 2, 6)])
    assert after.raw == pytest.approx(1 - 0.11 * math.tanh(5 / 6))  # 1 - 0.0750
    # far after (d > 3): the full cost
    far = std([s], [flags(20, 2, 15)])
    assert far.raw == pytest.approx(1 - 0.11)
    assert far.false_detections == 1


def test_profiles_weigh_false_positives_and_misses():
    s = NabSeries(10, ((4, 5),))
    out = nab_score([s], [flags(10, 0)])  # one FP before the window, the window missed
    assert [p.name for p in NAB_PROFILES] == list(out)
    assert out["standard"].raw == pytest.approx(-1.11)
    assert out["reward_low_FP_rate"].raw == pytest.approx(-1.22)
    assert out["reward_low_FN_rate"].raw == pytest.approx(-2.11)
    assert out["reward_low_FN_rate"].normalized == pytest.approx(100 * (-2.11 + 2) / 3)


def test_probation_rows_are_not_scored():
    assert nab_probation_rows(20) == 3
    assert nab_probation_rows(4032) == 604  # floor(604.8)
    assert nab_probation_rows(10_000) == 750  # the cap: 0.15 * 5000
    assert nab_probation_rows(100, 0.0) == 0
    with pytest.raises(InvalidInput):
        nab_probation_rows(10, 1.5)
    s = NabSeries.with_probation(20, [(10, 12)])
    assert s.probation == 3
    out = std([s], [flags(20, 1, 2)])  # detections in the probation period are ignored
    assert (out.raw, out.detections) == (-1.0, 0)
    # a window inside the probation period is never scored: no miss, yet it counts in perfect
    # (as NAB)
    early = NabSeries(20, ((0, 1), (10, 12)), probation=3)
    out = std([early], [flags(20, 10)])
    assert (out.windows, out.null, out.perfect, out.raw) == (1, -1.0, 2.0, pytest.approx(1.0))
    assert out.normalized == pytest.approx(100 * 2 / 3)


def test_scores_are_thresholded_and_nan_is_no_detection():
    s = NabSeries(10, ((4, 5),))
    scores = np.array([0.2, np.nan, 0, 0, 0.7, 0.9, 0, 0, 0, 0])
    assert std([s], [scores], threshold=0.5).raw == pytest.approx(1.0)
    out = std([s], [scores], threshold=0.8)  # only row 5
    assert out.raw == pytest.approx(math.tanh(1.25) / S_LEFT)


def test_the_sweep_picks_one_threshold_per_profile_over_all_series():
    # A: window (4, 5) found at 0.9. B: ten FPs (no window before them) and its window at 0.5.
    a = NabSeries(10, ((4, 5),), name="a")
    b = NabSeries(20, ((15, 16),), name="b")
    sa = flags(10, 4) * 0.9
    sb = np.zeros(20)
    sb[:10] = 0.5
    sb[15] = 0.5
    out = nab_score([a, b], [sa, sb], threshold=None)
    # standard: at 0.5, 2 windows - 10 * 0.11 = 0.9 beats 0 (at 0.9) and -2 (never)
    assert out["standard"].threshold == 0.5 and out["standard"].swept
    assert out["standard"].raw == pytest.approx(0.9)
    assert out["standard"].normalized == pytest.approx(100 * 2.9 / 4)
    # low FP: ten FPs cost 2.2 > the 2 a second window brings: stays at 0.9
    assert out["reward_low_FP_rate"].threshold == 0.9
    assert out["reward_low_FP_rate"].normalized == pytest.approx(50.0)
    # low FN: 0.5 again; null -4, perfect 2
    assert out["reward_low_FN_rate"].threshold == 0.5
    assert out["reward_low_FN_rate"].normalized == pytest.approx(100 * 4.9 / 6)


def test_the_sweep_prefers_silence_when_nothing_helps():
    # every distinct score is a candidate, 0 included (it flags every row): the window at 0.1
    # comes with 38 false positives, so never firing is best
    s = NabSeries(40, ((4, 5),))
    scores = np.ones(40)
    scores[4:6] = 0.1
    out = nab_score([s], [scores], threshold=None)["standard"]
    assert math.isinf(out.threshold) and out.detections == 0 and out.normalized == 0.0
    assert out.to_dict()["threshold"] is None


def test_bad_inputs_are_invalid_input():
    with pytest.raises(InvalidInput, match="window"):
        NabSeries(10, ((4, 12),))
    with pytest.raises(InvalidInput, match="window"):
        NabSeries(10, ((4, 6), (5, 8)))
    with pytest.raises(InvalidInput, match="rows but"):
        nab_score([NabSeries(10, ())], [np.zeros(9)])
    # no windows at all: the normalised score is undefined, the raw cost still counts
    out = std([NabSeries(5, ())], [flags(5, 1)])
    assert out.normalized is None and out.raw == pytest.approx(-0.11)


# -------------------------------------------------------------- stored anomalies -> incident onsets

T0 = 1_700_000_040  # a multiple of 60


def test_incident_onsets_follow_resolve_after():
    times = [T0 + o for o in (0, 60, 120, 600, 660)]  # rows 0, 1, 2, 10, 11: 7 normal rows between
    assert incident_onsets(times, 60, 5) == [T0, T0 + 600]
    assert incident_onsets(times, 60, 7) == [T0]
    assert incident_onsets(reversed(times), 60, 6) == [T0, T0 + 600]  # order does not matter
    assert incident_onsets([], 60, 5) == []


def test_nab_evaluate_scores_onsets_on_a_step_grid():
    labels = parse_labels_json(
        {
            "series": [
                {"labels": {"job": "api"}, "windows": [{"start": T0 + 600, "end": T0 + 900}]},
                {"labels": {"job": "db"}, "windows": []},
            ]
        },
        "hand.json",
    )
    api = [
        ({"job": "api", "instance": i}, T0 + o)
        for i, o in (("a", 660), ("a", 720), ("b", 600), ("a", 1200))
    ]
    detections = [*api, ({"job": "db"}, T0 + 300), ({"job": "web"}, T0 + 1500)]
    # grid [T0, T0+1800): 30 rows; window rows 10..14. Onsets: instance b at row 10 (the left
    # edge: +1), instance a at 660 (row 11, same window: only the earliest counts) and at 1200
    # (row 20, 12 normal rows later: d = 6/4 after the window); db at row 5, web (unlabelled) at
    # row 25: no window before them.
    out = nab_evaluate(labels, detections, step=60, start=T0, end=T0 + 1800, resolve_after=5)
    raw = 1 - 0.11 * math.tanh(3.75) - 0.11 - 0.11
    std = out.profiles["standard"]
    assert (out.rows, out.grid_start, out.incidents) == (30, T0, 5)
    assert std.raw == pytest.approx(raw) and std.normalized == pytest.approx(100 * (raw + 1) / 2)
    assert [(s.labels, s.labelled, s.incidents, s.false_incidents) for s in out.series] == [
        ({"job": "api"}, True, 3, 1),
        ({"job": "db"}, True, 1, 1),
        ({"job": "web"}, False, 1, 1),
    ]
    assert out.series[1].score is None  # no windows: no normalised score
    # the first 15% (4 rows) not scored: db's onset at row 5 still counts; the same score
    assert nab_evaluate(
        labels, detections, step=60, start=T0, end=T0 + 1800, resolve_after=5, probation=0.15
    ).profiles["standard"].raw == pytest.approx(raw)
    # by default, the product's resolve_after: 7 normal rows between 720 and 1200 split or not
    default = nab_evaluate(labels, detections, step=60, start=T0, end=T0 + 1800)
    assert default.resolve_after == DEFAULT_RESOLVE_AFTER
    assert default.series[0].incidents == (2 if DEFAULT_RESOLVE_AFTER >= 7 else 3)
    # no range given: from the first anomaly/window (T0+300) to the last anomaly + a step
    auto = nab_evaluate(labels, detections, step=60)
    assert (auto.grid_start, auto.rows) == (T0 + 300, 21)
    assert json.loads(json.dumps(auto.to_dict()))["profiles"]["standard"]["windows"] == 1


def test_nab_evaluate_clips_windows_to_the_range_and_checks_its_inputs():
    labels = parse_labels_json(
        [{"labels": {"job": "api"}, "start": T0 - 600, "end": T0 + 120}], "w.json"
    )
    # the window reaches into the range: its rows 0..1 stay a window, found at row 1
    out = nab_evaluate(labels, [({"job": "api"}, T0 + 60)], step=60, start=T0, end=T0 + 600)
    assert out.profiles["standard"].raw == pytest.approx(math.tanh(1.25) / S_LEFT)
    with pytest.raises(InvalidInput, match="step"):
        nab_evaluate(labels, [], step=0)
    with pytest.raises(InvalidInput, match="resolve_after"):
        nab_evaluate(labels, [], step=60, resolve_after=-1)
    with pytest.raises(InvalidInput, match="probation"):
        nab_evaluate(labels, [], step=60, probation=1.0)
    with pytest.raises(InvalidInput, match="shorter"):
        nab_evaluate(labels, [], step=1, start=0, end=2 * 10**9)
    both = parse_labels_json(
        [
            {"labels": {"job": "api"}, "start": T0, "end": T0 + 60},
            {"labels": {"env": "prod"}, "start": T0, "end": T0 + 60},
        ],
        "b.json",
    )
    with pytest.raises(InvalidInput, match="matches both"):
        nab_evaluate(both, [({"job": "api", "env": "prod"}, T0)], step=60)


def test_sparse_rows_give_the_dense_scores():
    rng = np.random.default_rng(5)
    series, dense, rows = [], [], []
    for i in range(6):
        n = int(rng.integers(30, 200))
        cuts = np.sort(rng.choice(np.arange(1, n - 1), size=4, replace=False))
        wins = [(int(cuts[0]), int(cuts[1])), (int(cuts[2]), int(cuts[3]))] if i % 3 else []
        s = NabSeries.with_probation(n, wins, name=f"s{i}")
        flags = (rng.random(n) < 0.1).astype(float)
        series.append(s)
        dense.append(flags)
        rows.append(np.flatnonzero(flags))
    a = nab_score(series, dense)
    b = nab_score_rows(series, rows)
    for name in a:
        assert b[name].raw == pytest.approx(a[name].raw)
        assert (
            b[name].detections,
            b[name].false_detections,
            b[name].detected_windows,
            b[name].windows,
        ) == (
            a[name].detections,
            a[name].false_detections,
            a[name].detected_windows,
            a[name].windows,
        )
        assert (b[name].null, b[name].perfect) == (a[name].null, a[name].perfect)
    with pytest.raises(InvalidInput, match="within"):
        nab_score_rows([NabSeries(5, ())], [[7]])
