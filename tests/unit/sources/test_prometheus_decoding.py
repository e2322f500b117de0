"""Decoding every result type into typed values and frames; range chunking arithmetic."""

from __future__ import annotations

import math

import httpx
import numpy as np
import pandas as pd
import pytest

from aiops.errors import InvalidInput
from aiops.sources.buffer import SampleBuffer
from aiops.sources.http import RetryPolicy
from aiops.sources.prometheus import PrometheusClient

FAST = RetryPolicy(attempts=1, initial_seconds=0, jitter_seconds=0)


def answering(data):
    http = httpx.AsyncClient(
        transport=httpx.MockTransport(
            lambda r: httpx.Response(200, json={"status": "success", "data": data})
        )
    )
    return PrometheusClient(http, "http://p:9090", retry=FAST)


async def test_vector_decodes_into_series_and_a_frame_with_label_columns():
    client = answering(
        {
            "resultType": "vector",
            "result": [
                {"metric": {"__name__": "up", "job": "a"}, "value": [1700000000.5, "1"]},
                {
                    "metric": {"__name__": "up", "job": "b", "zone": "x"},
                    "value": [1700000000.5, "NaN"],
                },
            ],
        }
    )
    result = await client.query("up", 1700000000)
    assert result.result_type == "vector"
    assert [s.labels for s in result.series] == [
        {"__name__": "up", "job": "a"},
        {"__name__": "up", "job": "b", "zone": "x"},
    ]
    frame = result.to_frame()
    assert list(frame.columns) == ["timestamp", "value", "__name__", "job", "zone"]
    assert frame["timestamp"].iloc[0] == pd.Timestamp("2023-11-14T22:13:20.5Z")
    assert frame["value"].iloc[0] == 1.0 and math.isnan(frame["value"].iloc[1])
    assert pd.isna(frame["zone"].iloc[0]) and frame["zone"].iloc[1] == "x"
    assert result.to_dict()["result"][1]["value"] == [1700000000.5, "NaN"]


async def test_matrix_decodes_one_row_per_sample_with_inf_values():
    client = answering(
        {
            "resultType": "matrix",
            "result": [
                {"metric": {"i": "a"}, "values": [[1, "1.5"], [2, "+Inf"], [3, "-Inf"]]},
                {"metric": {"i": "b"}, "values": [[1, "2"]]},
            ],
        }
    )
    result = await client.query_range("x", 1, 3, 1)
    frame = result.to_frame()
    assert len(frame) == 4 and result.samples == 4
    assert frame["value"].tolist()[:3] == [1.5, math.inf, -math.inf]
    assert frame["i"].tolist() == ["a", "a", "a", "b"]
    series = result.series[0].to_series()
    assert isinstance(series.index, pd.DatetimeIndex) and series.index.tz is not None


async def test_scalar_and_string_results():
    scalar = await answering({"resultType": "scalar", "result": [1700000000, "42"]}).query(
        "42", 1700000000
    )
    assert scalar.scalar == (1700000000.0, 42.0)
    assert scalar.to_frame()["value"].tolist() == [42.0]
    text = await answering({"resultType": "string", "result": [1700000000, "hello"]}).query(
        '"hello"', 1700000000
    )
    assert text.string == (1700000000.0, "hello")
    assert text.to_frame()["value"].tolist() == ["hello"]


async def test_labels_named_like_frame_columns_are_renamed():
    client = answering(
        {
            "resultType": "vector",
            "result": [{"metric": {"value": "v", "timestamp": "t"}, "value": [1, "1"]}],
        }
    )
    frame = (await client.query("x", 1)).to_frame()
    assert list(frame.columns) == ["timestamp", "value", "label_timestamp", "label_value"]


def test_range_windows_split_exactly_at_the_point_limit():
    client = answering({})
    windows = client._windows("up", 0, 25, 1, 10)  # 26 points -> 10 + 10 + 6
    assert windows == [(0, 9, 1), (10, 19, 1), (20, 25, 1)]
    stamps = [t for s, e, st in windows for t in np.arange(s, e + st / 2, st)]
    assert stamps == list(range(26))
    assert client._windows("up", 0, 9, 1, 10) == [(0, 9, 1)]


@pytest.mark.parametrize(
    "start,end,step,field",
    [
        ("yesterday-ish", "now", "1m", "start"),
        (100, 50, "1m", "end"),
        (0, 100, "0s", "step"),
        (0, 100, "-5m", "step"),
        (0, 100, "fast", "step"),
    ],
)
async def test_bad_ranges_are_invalid_input_naming_the_field(start, end, step, field):
    with pytest.raises(InvalidInput) as err:
        await answering({}).query_range("up", start, end, step)
    assert err.value.field == field


async def test_empty_query_is_invalid_input():
    with pytest.raises(InvalidInput):
        await answering({}).query("  ")


def test_buffer_drops_oldest_samples_and_counts_them():
    buf = SampleBuffer(capacity=5)
    buf.put(pd.DataFrame({"value": [1, 2, 3]}))
    assert buf.put(pd.DataFrame({"value": [4, 5, 6, 7]})) == 2
    assert len(buf) == 5 and buf.dropped == 2
    assert buf.drain()["value"].tolist() == [3, 4, 5, 6, 7]
    assert buf.put(pd.DataFrame({"value": list(range(12))})) == 7
    assert buf.drain()["value"].tolist() == [7, 8, 9, 10, 11]
    assert buf.dropped == 9 and len(buf) == 0
