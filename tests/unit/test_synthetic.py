"""The synthetic labelled benchmark: deterministic, every kind present, windows where the
changes are."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from aiops.errors import InvalidInput
from aiops.evaluation import parse_labels_json
from aiops.localprom import write_openmetrics
from aiops.synthetic import (
    ANOMALY_KINDS,
    LASTING_KINDS,
    LASTING_WINDOW,
    REALISTIC_KINDS,
    SHAPES,
    SyntheticConfig,
    anomaly_kinds,
    families,
    generate,
    labels_document,
)

SMALL = SyntheticConfig(days=8, step=300, series=12, seed=3, warmup_days=3)


def clean_values(s):
    """The same series without its anomalies (the injected part is additive, or a noise scale)."""
    from dataclasses import replace

    return replace(s, anomalies=()).values()


def test_same_config_same_values_and_labels():
    a, b = generate(SMALL), generate(SMALL)
    for x, y in zip(a.series, b.series, strict=True):
        assert np.array_equal(x.values(), y.values())
        assert x.anomalies == y.anomalies and x.labels == y.labels
    other = generate(SyntheticConfig(days=8, step=300, series=12, seed=4, warmup_days=3))
    assert not np.array_equal(a.series[0].values(), other.series[0].values())


def test_every_kind_is_present_and_some_series_are_clean():
    data = generate(SMALL)
    kinds = {a.kind for s in data.series for a in s.anomalies}
    assert kinds == set(ANOMALY_KINDS)
    assert any(s.kind == "none" and not s.anomalies for s in data.series)
    for s in data.series:
        assert all(a.kind == s.kind for a in s.anomalies) and s.labels["anomaly"] == s.kind
        assert s.labels["pattern"] == ("weekly" if s.weekly else "daily")
    assert {s.labels["pattern"] for s in data.series} == {"daily", "weekly"}


def test_windows_lie_after_the_warm_up_on_the_grid_and_do_not_overlap():
    c = SMALL
    for s in generate(c).series:
        ends = [c.eval_start]
        for a in s.anomalies:
            assert a.start >= ends[-1] and a.end > a.start and a.end <= c.end
            assert (a.start - c.start) % c.step == 0 and (a.end - c.start) % c.step == 0
            ends.append(a.end)


def test_the_changes_are_exactly_inside_the_windows():
    c = SMALL
    for s in generate(c).series:
        if not s.anomalies:
            continue
        ts = s.timestamps()
        diff = s.values() - clean_values(s)
        inside = np.zeros(len(ts), dtype=bool)
        for a in s.anomalies:
            inside |= (ts >= a.start) & (ts < a.end)
        assert np.all(diff[~inside] == 0)
        for a in s.anomalies:
            span = diff[(ts >= a.start) & (ts < a.end)]
            if a.kind == "variance":  # the noise, scaled
                assert np.std(span) > 0 and a.magnitude >= 3
                continue
            if a.kind == "drift":  # a ramp to the full magnitude, then back at once
                assert np.all(np.diff(span) * np.sign(a.magnitude) > 0)
                assert span[-1] == pytest.approx(a.magnitude * s.sigma)
            else:
                assert np.allclose(span, a.magnitude * s.sigma)
            assert abs(a.magnitude) >= 5


def test_openmetrics_and_labels_file_agree():
    data = generate(SMALL)
    out = io.StringIO()
    written = write_openmetrics(families(data), out)
    assert written == data.samples
    text = out.getvalue()
    assert (
        text.endswith("# EOF\n")
        and 'aiops_synth{anomaly="spike",pattern="daily",series="s000"}' in text
    )
    doc = json.loads(json.dumps(labels_document(data)))
    labels = parse_labels_json(doc, "synthetic")
    assert len(labels.series) == SMALL.series
    assert labels.windows == sum(len(s.anomalies) for s in data.series)
    first = data.series[0]
    assert [w.start for w in labels.series[0].windows] == [a.start for a in first.anomalies]


def test_bad_configs_are_refused():
    with pytest.raises(InvalidInput):
        SyntheticConfig(days=3, warmup_days=3)
    with pytest.raises(InvalidInput):
        SyntheticConfig(step=7)


# ------------------------------------------------------------------ the realistic mix

REAL = SyntheticConfig(days=8, step=300, series=24, seed=3, warmup_days=3, realistic=True)


def by(data, shape=None, kind=None):
    return [
        s
        for s in data.series
        if (shape is None or s.shape == shape) and (kind is None or s.kind == kind)
    ]


def test_realistic_is_deterministic_and_covers_every_shape_and_kind():
    a, b = generate(REAL), generate(REAL)
    for x, y in zip(a.series, b.series, strict=True):
        assert np.array_equal(x.values(), y.values(), equal_nan=True)
        assert x.anomalies == y.anomalies and x.gaps == y.gaps
    assert {s.shape for s in a.series} == set(SHAPES)
    assert {s.labels["shape"] for s in a.series} == set(SHAPES)
    assert (
        {a_.kind for s in a.series for a_ in s.anomalies}
        == set(REALISTIC_KINDS)
        == set(anomaly_kinds(REAL))
    )
    assert (
        anomaly_kinds(SMALL) == ANOMALY_KINDS and not SMALL.realistic
    )  # the classic set is the default
    assert all(
        s.shape == "gauge" and not s.gaps and "shape" not in s.labels
        for s in generate(SMALL).series
    )
    # every (shape, kind) pair appears: 3 shapes x 8 kinds cycle through 24 series
    assert {(s.shape, s.kind) for s in a.series} == {
        (sh, k) for sh in SHAPES for k in (*REALISTIC_KINDS, "none")
    }


def test_realistic_windows_lie_after_the_warm_up_on_the_grid_and_do_not_overlap():
    c = REAL
    for s in generate(c).series:
        end = c.eval_start
        for a in s.anomalies:
            assert a.start >= end and a.end > a.start and a.end <= c.end
            assert (a.start - c.start) % c.step == 0 and (a.end - c.start) % c.step == 0
            assert a.lasting == (a.kind in LASTING_KINDS)
            if a.lasting:
                assert a.end - a.start == LASTING_WINDOW
            end = a.end


def test_counts_are_small_non_negative_integers():
    counts = by(generate(REAL), shape="count")
    zeros = []
    for s in counts:
        v = s.values()
        v = v[~np.isnan(v)]
        assert np.all(v >= 0) and np.all(v == np.round(v))
        zeros.append(np.mean(v == 0))
    assert max(zeros) > 0.3  # some series are mostly zeros and ones
    assert np.median([np.median(s.values()[~np.isnan(s.values())]) for s in counts]) <= 5


def test_flat_series_sit_still_on_their_resolution():
    flats = by(generate(REAL), shape="flat")
    assert any(s.zero_based for s in flats) and any(not s.zero_based for s in flats)
    for s in flats:
        v = clean_values(s)
        v = v[~np.isnan(v)]
        assert np.allclose(v / s.resolution, np.round(v / s.resolution))
        assert np.mean(np.diff(v) == 0) > 0.8  # mostly unchanged from one step to the next
        if s.zero_based:
            assert np.mean(v == 0) > 0.8 and v.max() > 0  # empty, with ordinary blips


def test_gauge_noise_is_heavy_tailed_and_bursty():
    from scipy.stats import kurtosis

    gauges = by(generate(REAL), shape="gauge")
    assert all(s.tail_df > 2 and s.bursts_per_day > 0 for s in gauges)
    # step-to-step changes of the clean series: far heavier tails than a Gaussian's (excess 0)
    excess = [
        kurtosis(np.diff(clean_values(s)[~np.isnan(clean_values(s))]))
        for s in gauges
        if not s.resolution
    ]
    assert excess and np.median(excess) > 1.0
    classic = [kurtosis(np.diff(s.values())) for s in generate(SMALL).series if s.kind == "none"]
    assert max(classic) < np.median(excess)


def test_lasting_shifts_stay_after_their_window():
    for s in by(generate(REAL), kind="lasting_shift"):
        ts, v, clean = s.timestamps(), s.values(), clean_values(s)
        diff = v - clean
        level = 0.0
        for k, a in enumerate(s.anomalies):
            level += a.magnitude * s.sigma
            nxt = s.anomalies[k + 1].start if k + 1 < len(s.anomalies) else ts[-1] + 1
            after = (ts >= a.end) & (ts < nxt) & ~np.isnan(diff)  # after the labelled hour
            got = np.median(diff[after])
            # a gauge or flat series moves by exactly that (up to its resolution); a count's rate
            # does
            tol = 0.35 * abs(a.magnitude * s.sigma) if s.shape == "count" else s.resolution + 1e-9
            if s.shape == "count" or s.zero_based:
                assert level >= -1e-9  # up, then back down to where it was: never below
            assert abs(got - level) <= tol + 1e-9
        alternating = [np.sign(a.magnitude) for a in s.anomalies]
        assert all(x != y for x, y in zip(alternating, alternating[1:]))


def test_lasting_variance_changes_widen_the_noise_until_half_way_to_the_next():
    for s in by(generate(REAL), kind="lasting_variance"):
        ts, v = s.timestamps(), s.values()
        a, nxt = s.anomalies[0], s.anomalies[1]
        before = (ts >= REAL.eval_start) & (ts < a.start)
        after = (ts >= a.end) & (ts < (a.start + nxt.start) / 2)
        assert (nxt.start - a.start) / 2 >= 4 * 3600  # far longer than the labelled hour
        spread = [np.nanstd(np.diff(v[m])) for m in (before, after)]
        assert spread[1] > 1.5 * spread[0], (s.labels, spread)


def test_gaps_are_missing_points_clear_of_the_windows():
    data = generate(REAL)
    gapped = [s for s in data.series if s.gaps]
    assert gapped and len(gapped) < len(data.series)
    for s in gapped:
        ts, v = s.timestamps(), s.values()
        missing = np.isnan(v)
        expect = np.zeros(len(ts), dtype=bool)
        for g0, g1 in s.gaps:
            assert 1 <= (g1 - g0) / REAL.step <= 60
            expect |= (ts >= g0) & (ts < g1)
        assert np.array_equal(missing, expect)
        for a in s.anomalies:
            near = (ts >= a.start - 3600) & (ts < a.end + 3600)
            assert not missing[near].any()
        obs_ts, obs_v = s.observed()
        assert len(obs_ts) == len(ts) - missing.sum() and not np.isnan(obs_v).any()
    # a missing point is no sample in the OpenMetrics history
    out = io.StringIO()
    assert write_openmetrics(families(data), out) == sum(len(s.observed()[0]) for s in data.series)
    assert "NaN" not in out.getvalue()
    doc = parse_labels_json(json.loads(json.dumps(labels_document(data))), "realistic")
    assert doc.windows == sum(len(s.anomalies) for s in data.series)
