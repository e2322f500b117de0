"""The synthetic labelled benchmark: deterministic, every kind present, windows where the changes are."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from aiops.errors import InvalidInput
from aiops.evaluation import parse_labels_json
from aiops.localprom import write_openmetrics
from aiops.synthetic import ANOMALY_KINDS, SyntheticConfig, families, generate, labels_document

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
    assert text.endswith("# EOF\n") and 'aiops_synth{anomaly="spike",pattern="daily",series="s000"}' in text
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
