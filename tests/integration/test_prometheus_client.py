"""PrometheusClient against Debian's real Prometheus loaded with known history."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from aiops.cli import main
from aiops.errors import BadQuery, DatasourceUnavailable, InvalidInput
from aiops.sources.buffer import SampleBuffer
from aiops.sources.http import RetryPolicy
from aiops.sources.prometheus import PrometheusClient
from tests.support.prometheus import free_port

pytestmark = pytest.mark.prometheus


async def test_instant_query_returns_the_loaded_values(prom, prometheus):
    h = prometheus.history
    result = await prom.query("aiops_test_gauge", h.timestamp(100))
    values = {s.labels["instance"]: s.values[0] for s in result.series}
    assert values == {"a": 100.0, "b": 200.0}
    assert all(s.timestamps[0] == h.timestamp(100) for s in result.series)


async def test_rate_of_a_counter_is_exact(prom, prometheus):
    h = prometheus.history
    result = await prom.query(
        'rate(aiops_test_requests_total{instance="a",status="200"}[5m])', h.timestamp(200)
    )
    assert [s.values[0] for s in result.series] == [pytest.approx(2.0, rel=1e-12)]


async def test_range_query_returns_every_sample_in_the_window(prom, prometheus):
    h = prometheus.history
    result = await prom.query_range(
        'aiops_test_gauge{instance="a"}', h.timestamp(10), h.timestamp(20), 15
    )
    assert result.result_type == "matrix" and result.chunks == 1
    frame = result.to_frame()
    assert frame["value"].tolist() == [float(i) for i in range(10, 21)]
    assert (frame["timestamp"].astype("int64") // 10**9).tolist() == [
        h.timestamp(i) for i in range(10, 21)
    ]
    assert frame["instance"].unique().tolist() == ["a"]


async def test_range_over_the_point_limit_is_split_and_merged_without_gaps(prom, prometheus):
    h = prometheus.history
    start, end = h.timestamp(0), h.timestamp(0) + 4 * 3600  # 14,401 points at a 1s step
    result = await prom.query_range('aiops_test_gauge{instance="a"}', start, end, 1)
    assert result.chunks == 2
    (series,) = result.series
    expected_ts = np.arange(start, end + 1, 1, dtype=float)
    np.testing.assert_array_equal(series.timestamps, expected_ts)
    np.testing.assert_array_equal(series.values, np.floor((expected_ts - start) / h.step))


async def test_streaming_chunks_arrive_oldest_first_under_the_limit(prom, prometheus):
    h = prometheus.history
    chunks = [
        c
        async for c in prom.iter_range(
            "aiops_test_gauge", h.timestamp(0), h.timestamp(0) + 3000, 1, max_points=1000
        )
    ]
    assert len(chunks) == 4
    firsts = [c.series[0].timestamps[0] for c in chunks]
    assert firsts == sorted(firsts)
    assert all(len(s) <= 1000 for c in chunks for s in c.series)
    assert sum(c.samples for c in chunks) == 2 * 3001


async def test_collecting_into_a_small_buffer_drops_and_counts_the_oldest(prom, prometheus):
    h = prometheus.history
    buffer = SampleBuffer(capacity=100)
    fetched = await prom.collect_range(
        'aiops_test_gauge{instance="a"}',
        h.timestamp(0),
        h.timestamp(299),
        15,
        buffer,
        max_points=50,
    )
    assert fetched == 300
    assert buffer.dropped == 200
    assert buffer.drain()["value"].tolist() == [float(i) for i in range(200, 300)]


async def test_bad_query_fails_at_once_with_prometheus_message(prometheus, http):
    calls = []

    async def count(request):
        calls.append(request)

    http.event_hooks["request"].append(count)
    prom = PrometheusClient(http, prometheus.url)
    with pytest.raises(BadQuery) as err:
        await prom.query("sum(rate(aiops_test_gauge[5m])", 1700000000)
    assert len(calls) == 1
    assert "bad_data" in err.value.message and "parse error" in err.value.message
    assert err.value.query == "sum(rate(aiops_test_gauge[5m])"


async def test_batch_queries_keep_order_and_isolate_failures(prom, prometheus):
    at = prometheus.history.timestamp(50)
    results = await prom.query_many(
        ['aiops_test_gauge{instance="a"}', "up{", 'aiops_test_gauge{instance="b"}'], at
    )
    assert results[0].series[0].values[0] == 50.0
    assert isinstance(results[1], BadQuery)
    assert results[2].series[0].values[0] == 100.0


async def test_series_labels_metadata_and_build_info(prom, prometheus):
    h = prometheus.history
    series = await prom.series(["aiops_test_gauge"], h.start, h.end)
    assert sorted(s["instance"] for s in series) == ["a", "b"]
    names = await prom.label_names()
    assert {"__name__", "instance", "job", "status", "v"} <= set(names)
    assert await prom.label_values("instance") == ["a", "b"]
    assert isinstance(await prom.metadata(), dict)
    info = await prom.build_info()
    assert info["version"].startswith("2.")
    assert await prom.ready()
    with pytest.raises(InvalidInput):
        await prom.label_values("bad-label")


async def test_failover_from_a_refusing_primary_to_the_real_server(prometheus, http):
    dead = f"http://127.0.0.1:{free_port()}"
    prom = PrometheusClient(http, [dead, prometheus.url])
    result = await prom.query("aiops_test_gauge", prometheus.history.timestamp(5))
    assert len(result.series) == 2 and result.url == prometheus.url
    health = {u.url: u.status for u in prom.health().urls}
    assert health == {dead: "down", prometheus.url: "up"}
    assert prom.stats.failovers == 1


async def test_every_url_dead_gives_unavailable_within_a_bounded_time(http):
    urls = [f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"]
    prom = PrometheusClient(
        http, urls, retry=RetryPolicy(attempts=3, initial_seconds=0.2, max_seconds=10)
    )
    started = time.monotonic()
    with pytest.raises(DatasourceUnavailable) as err:
        await prom.query("up")
    assert time.monotonic() - started < 10
    assert prom.stats.retries == 2
    assert all(u in err.value.message for u in urls)


def test_cli_prints_a_table_and_json(prometheus, monkeypatch, capsys):
    monkeypatch.setenv("AIOPS_PROMETHEUS_URL", prometheus.url)
    at = str(prometheus.history.timestamp(7))
    assert main(["query", "aiops_test_gauge", "--time", at]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["timestamp", "value", "__name__", "instance"]
    assert "2 series, 2 samples" in out
    assert main(["query", 'aiops_test_gauge{instance="b"}', "--time", at, "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["resultType"] == "vector"
    assert body["result"][0]["value"] == [float(at), 14.0]
    start = prometheus.history.timestamp(0)
    assert (
        main(
            [
                "query",
                'aiops_test_gauge{instance="a"}',
                "--start",
                str(start),
                "--end",
                str(start + 30),
                "--step",
                "15s",
                "--json",
            ]
        )
        == 0
    )
    assert [v for _, v in json.loads(capsys.readouterr().out)["result"][0]["values"]] == [
        0.0,
        1.0,
        2.0,
    ]


def test_cli_reports_bad_queries_and_bad_settings_without_traceback(
    prometheus, monkeypatch, capsys
):
    monkeypatch.setenv("AIOPS_PROMETHEUS_URL", prometheus.url)
    assert main(["query", "sum(", "--time", "1700000000"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("aiops: bad_data") and "Traceback" not in err
    monkeypatch.setenv("AIOPS_TIMEOUT_SECONDS", "soon")
    assert main(["query", "up"]) == 2
    assert "AIOPS_TIMEOUT_SECONDS" in capsys.readouterr().err
