"""LokiClient held to Loki's documented HTTP contract, against the stand-in server."""

from __future__ import annotations

import httpx
import pandas as pd
import pytest

from aiops.errors import BadQuery, BadResponse, DatasourceError, DatasourceUnavailable, InvalidInput
from aiops.sources.http import RetryPolicy
from aiops.sources.loki import LogStreams, LokiClient
from tests.support.fakeloki import FakeLoki

FAST = RetryPolicy(attempts=3, initial_seconds=0, max_wait_seconds=0, jitter_seconds=0)
T0 = 1_700_000_000  # seconds
NS = 10**9


def make(fake: FakeLoki, **kw) -> LokiClient:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(fake.app), base_url="http://loki")
    return LokiClient(http, kw.pop("urls", "http://loki:3100"), retry=FAST, **kw)


def fill(fake: FakeLoki, n: int, *, every_ns: int = NS, labels=None, start=T0 * NS) -> None:
    for i in range(n):
        fake.add(labels or {"app": "api", "level": "info"}, start + i * every_ns, f"line {i}")


async def test_log_range_query_decodes_streams_into_the_log_frame_oldest_first():
    fake = FakeLoki()
    fake.add({"app": "api", "level": "error"}, T0 * NS + 5, "boom")
    fake.add({"app": "api", "level": "info"}, T0 * NS + 1, "hello")
    fake.add({"app": "web"}, T0 * NS + 3, "other app")
    result = await make(fake).query_range('{app="api"}', T0, T0 + 60, limit=100)
    assert isinstance(result, LogStreams)
    assert list(result.frame.columns) == ["timestamp", "labels", "line"]
    assert result.frame["line"].tolist() == ["hello", "boom"]
    assert result.frame["timestamp"].iloc[0] == pd.Timestamp(T0 * NS + 1, tz="UTC")
    assert result.frame["labels"].iloc[1] == {"app": "api", "level": "error"}
    assert result.streams == 2 and not result.truncated


async def test_metric_queries_decode_matrix_and_vector():
    fake = FakeLoki()
    fill(fake, 120)  # one line per second for two minutes
    client = make(fake)
    matrix = await client.query_range(
        'sum(count_over_time({app="api"}[1m]))', T0 + 60, T0 + 120, step="60s"
    )
    assert matrix.result_type == "matrix"
    assert matrix.series[0].values.tolist() == [60.0, 59.0]  # (t-1m, t]: lines 1..60, then 61..119
    vector = await client.query('sum by (level) (count_over_time({app="api"}[1m]))', T0 + 60)
    assert vector.result_type == "vector"
    assert vector.series[0].labels == {"level": "info"} and vector.series[0].values[0] == 60.0


async def test_an_instant_log_query_is_a_bad_query_with_lokis_words():
    with pytest.raises(BadQuery) as err:
        await make(FakeLoki()).query('{app="api"}', T0)
    assert "log queries are not supported as an instant query type" in err.value.message
    assert err.value.upstream_status == 400


async def test_plain_text_parse_errors_become_bad_query_carrying_the_message():
    with pytest.raises(BadQuery) as err:
        await make(FakeLoki()).query_range("app=api", T0, T0 + 60, limit=10)
    assert err.value.message == "parse error at line 1, col 1: syntax error: unexpected IDENTIFIER"
    assert err.value.query == "app=api"


async def test_a_large_window_is_paged_forward_without_loss_or_duplicates():
    fake = FakeLoki()
    fill(fake, 12_000, every_ns=NS // 100)  # 12,000 lines over two minutes
    result = await make(fake).logs('{app="api"}', T0, T0 + 3600)
    assert len(result) == 12_000
    assert result.frame["line"].tolist() == [f"line {i}" for i in range(12_000)]
    assert result.pages == 3 and not result.truncated  # 5000 + 5000 + 2000
    assert all(
        int(p["limit"]) <= 5000 and p["direction"] == "forward"
        for path, p in fake.requests
        if path.endswith("query_range")
    )


async def test_lines_sharing_a_nanosecond_at_a_page_boundary_are_kept_exactly_once():
    fake = FakeLoki()
    fake.add({"app": "api"}, T0 * NS, "a")
    fake.add({"app": "api"}, T0 * NS + 5, "b")
    for i in range(3):  # the first page (limit 4) ends in the middle of these
        fake.add({"app": "api"}, T0 * NS + 10, f"same-ns {i}")
    fake.add({"app": "api"}, T0 * NS + 20, "c")
    result = await make(fake).logs('{app="api"}', T0, T0 + 60, page_limit=4)
    assert result.frame["line"].tolist() == ["a", "b", "same-ns 0", "same-ns 1", "same-ns 2", "c"]
    assert not result.truncated
    starts = [int(p["start"]) for path, p in fake.requests if path.endswith("query_range")]
    assert starts == [T0 * NS, T0 * NS + 10, T0 * NS + 20]  # "c" came twice; kept once


async def test_more_lines_in_one_nanosecond_than_a_page_is_reported_as_truncation():
    fake = FakeLoki()
    for i in range(6):
        fake.add({"app": "api"}, T0 * NS + 10, f"same-ns {i}")
    fake.add({"app": "api"}, T0 * NS + 11, "after")
    result = await make(fake).logs('{app="api"}', T0, T0 + 60, page_limit=4)
    assert result.truncated and "share the timestamp" in result.reason
    assert result.frame["line"].tolist()[-1] == "after"


async def test_max_entries_cuts_the_result_and_says_so():
    fake = FakeLoki()
    fill(fake, 50)
    result = await make(fake).logs('{app="api"}', T0, T0 + 3600, max_entries=20, page_limit=15)
    assert len(result) == 20 and result.truncated and "max_entries=20" in result.reason


async def test_page_limit_above_the_server_maximum_is_lowered_to_it():
    fake = FakeLoki()
    fill(fake, 30)
    result = await make(fake, page_limit=10_000).logs('{app="api"}', T0, T0 + 3600)
    assert len(result) == 30
    limits = [p["limit"] for path, p in fake.requests if path.endswith("query_range")]
    assert limits[0] == "10000" and set(limits[1:]) == {"5000"}


async def test_windows_longer_than_a_slice_are_sliced_by_time():
    fake = FakeLoki()
    fill(fake, 10, every_ns=3600 * NS)  # one line an hour
    result = await make(fake, slice_seconds=3 * 3600).logs('{app="api"}', T0, T0 + 10 * 3600)
    assert len(result) == 10
    starts = [int(p["start"]) for path, p in fake.requests if path.endswith("query_range")]
    assert starts[:4] == [T0 * NS, (T0 + 3 * 3600) * NS, (T0 + 6 * 3600) * NS, (T0 + 9 * 3600) * NS]


async def test_the_tenant_header_is_sent_and_its_absence_is_lokis_401():
    fake = FakeLoki(require_tenant="team-a")
    fill(fake, 3)
    assert len(await make(fake, tenant="team-a").logs('{app="api"}', T0, T0 + 60)) == 3
    with pytest.raises(DatasourceError) as err:
        await make(fake).logs('{app="api"}', T0, T0 + 60)
    assert err.value.upstream_status == 401 and "no org id" in err.value.message
    assert not isinstance(err.value, BadQuery)


async def test_503_then_success_is_retried_and_persistent_503_is_unavailable():
    fake = FakeLoki(fail_next=[503, 503])
    fill(fake, 2)
    client = make(fake)
    assert len(await client.logs('{app="api"}', T0, T0 + 60)) == 2
    assert client.stats.retries == 2
    fake.fail_next = [503, 503, 503]
    with pytest.raises(DatasourceUnavailable) as err:
        await client.labels(T0, T0 + 60)
    assert "injected failure 503" in err.value.message


async def test_labels_values_series_stats_and_patterns():
    fake = FakeLoki()
    fake.add({"app": "api", "level": "error"}, T0 * NS + 1, "request 17 failed")
    fake.add({"app": "api", "level": "info"}, T0 * NS + 2, "request 18 ok")
    fake.add({"app": "web", "level": "info"}, T0 * NS + 3, "request 19 failed")
    client = make(fake)
    assert await client.labels(T0, T0 + 60) == ["app", "level"]
    assert await client.label_values("app", T0, T0 + 60) == ["api", "web"]
    series = await client.series(['{app="api"}'], T0, T0 + 60)
    assert series == [{"app": "api", "level": "error"}, {"app": "api", "level": "info"}]
    assert fake.requests[-1][0] == "/loki/api/v1/series"
    stats = await client.index_stats('{app="api"}', T0, T0 + 60)
    assert stats == {
        "streams": 2,
        "chunks": 2,
        "entries": 2,
        "bytes": len("request 17 failed") + len("request 18 ok"),
    }
    patterns = await client.patterns('{app="api"}', T0, T0 + 60)
    assert {p.pattern for p in patterns} == {"request <_> failed", "request <_> ok"}
    assert sum(p.total for p in patterns) == 2
    with pytest.raises(InvalidInput):
        await client.label_values("bad name")


async def test_push_sends_nanosecond_strings_and_expects_204():
    fake = FakeLoki()
    client = make(fake)
    pushed = await client.push(
        {(("app", "demo"),): [(T0, "first"), ("2023-11-14T22:13:21Z", "second")]}
    )
    assert pushed == 2
    assert [(e.ns, e.line) for e in fake.entries] == [(T0 * NS, "first"), ((T0 + 1) * NS, "second")]
    assert await client.ready()


def _mock(body, status=200):
    return httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: httpx.Response(status, json=body))
    )


async def test_categorized_labels_and_warnings_are_decoded():
    body = {
        "status": "success",
        "warnings": ["query was slow"],
        "data": {
            "resultType": "streams",
            "encodingFlags": ["categorize-labels"],
            "result": [
                {
                    "stream": {"app": "api"},
                    "values": [
                        [
                            "1700000000000000001",
                            "x",
                            {
                                "structuredMetadata": {"trace_id": "abc"},
                                "parsed": {"level": "warn"},
                            },
                        ]
                    ],
                }
            ],
            "stats": {},
        },
    }
    result = await LokiClient(_mock(body), "http://l:3100", retry=FAST).query_range(
        '{app="api"}', T0, T0 + 1, limit=10
    )
    assert result.frame["labels"].iloc[0] == {"app": "api", "trace_id": "abc", "level": "warn"}
    assert result.warnings == ["query was slow"]


@pytest.mark.parametrize(
    "body",
    [
        {"status": "success", "data": {"result": []}},
        {
            "status": "success",
            "data": {
                "resultType": "streams",
                "result": [{"stream": {}, "values": [["notanumber", "x"]]}],
            },
        },
        {"status": "error"},
    ],
)
async def test_malformed_answers_are_bad_responses(body):
    with pytest.raises(BadResponse):
        await LokiClient(_mock(body), "http://l:3100", retry=FAST).query_range(
            '{a="b"}', T0, T0 + 1, limit=10
        )


async def test_index_stats_needs_its_bare_object():
    with pytest.raises(BadResponse):
        await LokiClient(
            _mock({"status": "success", "data": {}}), "http://l:3100", retry=FAST
        ).index_stats('{a="b"}')


@pytest.mark.parametrize(
    "start,end,field", [(T0 + 10, T0, "end"), (T0, T0, "end"), ("garbage", T0, "start")]
)
async def test_bad_windows_are_refused_before_any_request(start, end, field):
    fake = FakeLoki()
    with pytest.raises(InvalidInput) as err:
        await make(fake).logs('{app="api"}', start, end)
    assert err.value.field == field and fake.requests == []
