"""Transformers on sample frames: exact expectations on small hand-made frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aiops import transform
from aiops.errors import InvalidInput

T = pd.Timestamp("2024-01-01T00:00:00Z")


def frame(rows):
    """rows: (seconds offset, value, instance)"""
    return pd.DataFrame(
        {
            "timestamp": [T + pd.Timedelta(seconds=s) for s, _, _ in rows],
            "value": [float(v) for _, v, _ in rows],
            "instance": pd.Categorical([i for _, _, i in rows]),
        }
    )


def test_standardize_sorts_dedupes_aligns_and_drops_nan():
    f = frame(
        [(31, 3, "a"), (0, 1, "a"), (16, 2, "a"), (17, 9, "a"), (5, np.nan, "b"), (15, 4, "b")]
    )
    out = transform.standardize(f, step="15s")
    assert out["instance"].tolist() == ["a", "a", "a", "b"]
    assert [int((t - T).total_seconds()) for t in out["timestamp"]] == [0, 15, 30, 15]
    assert out["value"].tolist() == [
        1.0,
        9.0,
        3.0,
        4.0,
    ]  # 16s and 17s both align to 15s: the last wins
    assert out["gap_before"].tolist() == [False, False, False, False]


def test_gaps_are_marked_per_series():
    f = frame([(0, 1, "a"), (15, 1, "a"), (90, 1, "a"), (0, 1, "b"), (60, 1, "b")])
    out = transform.standardize(f, step="15s")
    assert out["gap_before"].tolist() == [False, False, True, False, True]


def test_counter_resets_are_undone_only_when_asked():
    f = frame([(0, 10, "a"), (15, 20, "a"), (30, 5, "a"), (45, 8, "a"), (0, 1, "b"), (15, 0, "b")])
    assert transform.standardize(f)["value"].tolist() == [10, 20, 5, 8, 1, 0]
    assert transform.standardize(f, counter=True)["value"].tolist() == [10, 20, 25, 28, 1, 1]


def test_aggregate_groups_by_labels():
    f = frame([(0, 1, "a"), (0, 2, "b"), (15, 3, "a"), (15, 5, "b")])
    out = transform.aggregate(f, "sum")
    assert out["value"].tolist() == [3.0, 8.0] and list(out.columns) == ["timestamp", "value"]
    assert transform.aggregate(f, "max", by=["instance"])["value"].tolist() == [1.0, 3.0, 2.0, 5.0]
    with pytest.raises(InvalidInput):
        transform.aggregate(f, "sum", by=["zone"])
    with pytest.raises(InvalidInput):
        transform.aggregate(f, "product")


def test_resample_to_a_coarser_step():
    f = frame([(0, 1, "a"), (15, 3, "a"), (30, 5, "a"), (45, 7, "a"), (60, 9, "a")])
    out = transform.resample(f, "30s", "avg")
    assert out["value"].tolist() == [2.0, 6.0, 9.0]
    assert transform.resample(f, "1m", "max")["value"].tolist() == [7.0, 9.0]


def test_rolling_window_is_causal_per_series():
    f = frame([(0, 1, "a"), (15, 2, "a"), (30, 3, "a"), (0, 10, "b"), (15, 20, "b")])
    out = transform.rolling(f, "30s", "sum")
    assert out["value"].tolist() == [1.0, 3.0, 5.0, 10.0, 30.0]


def test_split_series_gives_one_float_series_per_label_set():
    f = frame([(15, 2, "a"), (0, 1, "a"), (0, 3, "b")])
    parts = list(transform.split_series(f))
    assert [(k, labels) for k, labels, _ in parts] == [
        ('instance="a"', {"instance": "a"}),
        ('instance="b"', {"instance": "b"}),
    ]
    s = parts[0][2]
    assert s.tolist() == [1.0, 2.0] and s.index.is_monotonic_increasing and str(s.index.tz) == "UTC"


def test_series_key_escapes_values_and_ignores_order():
    assert transform.series_key({"b": 'x"y', "a": "1"}) == 'a="1",b="x\\"y"'
    assert transform.series_key({}) == ""


def test_frames_without_the_sample_columns_are_refused():
    with pytest.raises(InvalidInput):
        transform.standardize(pd.DataFrame({"v": [1]}))


def test_the_array_path_of_standardize_equals_the_pandas_path():
    """Random frames with duplicates, NaN values, missing labels and unaligned times."""
    from aiops.transform import _standardize_fast, _standardize_pandas

    rng = np.random.default_rng(5)
    for trial in range(40):
        n = int(rng.integers(0, 300))
        frame = pd.DataFrame(
            {
                "timestamp": pd.to_datetime(
                    1_767_225_600 + rng.integers(0, 40, n) * 7.5, unit="s", utc=True
                ),
                "value": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
                "instance": pd.Series(rng.choice(["a", "b", "c", None], n), dtype=object),
                "job": rng.choice(["x", "y"], n),
            }
        )
        labels = ["instance", "job"] if trial % 3 else []
        if not labels:
            frame = frame[["timestamp", "value"]]
        for step, drop_nan, gap in ((15, True, None), (None, False, 30), (60, True, 45)):
            fast = _standardize_fast(frame, labels, step=step, drop_nan=drop_nan, gap=gap)
            slow = _standardize_pandas(
                frame, labels, step=step, drop_nan=drop_nan, counter=False, gap=gap
            )
            pd.testing.assert_frame_equal(fast, slow, check_dtype=False)
