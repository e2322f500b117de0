"""Loki feeds detectors through the same range interface as Prometheus (``iter_range``,
``collect_range``): a LogQL metric query's matrix, chunked under Loki's limits, against the
Loki stand-in; a log query is refused (by the client, and when a detector is saved)."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from aiops.config import Settings
from aiops.errors import BadQuery, ConfigError, InvalidInput
from aiops.logql import is_log_query, require_metric_query
from aiops.sources.buffer import SampleBuffer
from aiops.sources.loki import LokiClient
from aiops.sources.prometheus import range_windows
from aiops.store import load_detectors_file
from tests.support import lokidata
from tests.support.fakeloki import FakeLoki


@pytest.fixture
async def loki():
    fake = FakeLoki()
    lokidata.load(fake)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fake.app)) as http:
        yield LokiClient(http, "http://loki.test")


async def test_a_metric_query_collects_the_counts_per_step(loki):
    start, end = lokidata.START + 60, lokidata.START + lokidata.MINUTES * 60
    buffer = SampleBuffer(10_000, name="loki")
    fetched = await loki.collect_range(lokidata.QUERY, start, end, 60, buffer)
    frame = buffer.drain()
    assert fetched == len(frame) == lokidata.MINUTES
    assert list(frame["value"]) == [float(lokidata.errors_in(m)) for m in range(lokidata.MINUTES)]
    assert frame["timestamp"].iloc[lokidata.BURST_MINUTE].timestamp() == lokidata.burst_at()


async def test_chunks_cut_by_points_give_the_same_samples_as_one_request(loki):
    start, end = lokidata.START + 60, lokidata.START + lokidata.MINUTES * 60
    whole = await loki.metric_range(lokidata.QUERY, start, end, 60)
    chunks = [c async for c in loki.iter_range(lokidata.QUERY, start, end, 60, max_points=7)]
    assert len(chunks) == -(-lokidata.MINUTES // 7)
    joined = await loki.metric_range(lokidata.QUERY, start, end, 60, max_points=7)
    assert joined.chunks == len(chunks)
    (a,), (b,) = whole.series, joined.series
    assert np.array_equal(a.timestamps, b.timestamps) and np.array_equal(a.values, b.values)


def test_windows_stay_under_lokis_query_length():
    windows = range_windows(0, 40 * 86400, 3600, 11_000, max_seconds=720 * 3600)
    assert all(e - s <= 720 * 3600 for s, e, _ in windows)
    assert windows[0][0] == 0 and windows[-1][1] == 40 * 86400
    assert all(b[0] - a[1] == 3600 for a, b in zip(windows, windows[1:]))  # no gap, no overlap


async def test_a_log_query_is_refused_by_the_range_collection(loki):
    with pytest.raises(BadQuery, match="log query"):
        await loki.collect_range(
            '{app="checkout"} |= "error"',
            lokidata.START,
            lokidata.START + 600,
            60,
            SampleBuffer(100, name="loki"),
        )


def test_log_and_metric_queries_are_told_apart():
    assert is_log_query('{app="x"} |= "error"') and is_log_query(' {app="x"}')
    assert not is_log_query('sum(count_over_time({app="x"} |= "error" [1m]))')
    assert not is_log_query('rate({app="x"}[5m])')
    with pytest.raises(InvalidInput) as caught:
        require_metric_query('{app="x"}', field="datasource.query")
    assert caught.value.field == "datasource.query" and "metric query" in caught.value.message


def test_a_detectors_file_with_a_log_query_on_loki_names_the_detector(tmp_path):
    path = tmp_path / "detectors.yaml"
    path.write_text(
        "detectors:\n"
        "  - id: checkout-errors\n"
        "    kind: zscore\n"
        '    datasource: {name: loki, query: \'{app="checkout"} |= "error"\'}\n'
    )
    configs = Settings(
        prometheus_url="http://127.0.0.1:9", loki_url="http://127.0.0.1:9"
    ).datasource_configs()
    with pytest.raises(ConfigError) as caught:
        load_detectors_file(path, datasources=configs)
    assert "checkout-errors" in caught.value.message and "datasource.query" in caught.value.message
    assert load_detectors_file(path)  # without the datasources' types nothing is known


def test_the_examples_loki_detector_is_a_metric_query_and_runs():
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "detectors.yaml"
    configs = Settings(
        prometheus_url="http://127.0.0.1:9", loki_url="http://127.0.0.1:9"
    ).datasource_configs()
    (spec,) = [
        s
        for s in load_detectors_file(path, datasources=configs)
        if s.datasource and s.datasource.name == "loki"
    ]
    assert spec.status is None  # not paused: it starts training like the others
