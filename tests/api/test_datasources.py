"""``/api/datasources/...`` against the real Prometheus (known history) and the Loki stand-in."""

from __future__ import annotations

import time

import pytest

from aiops.api import ApiOptions

pytestmark = pytest.mark.prometheus

NS = 10**9


# --------------------------------------------------------------------------- health, collectors


async def test_health_reports_every_datasource_and_url_without_a_token(api, prometheus):
    r = await api.client.get("/api/datasources/health", headers={"Authorization": ""})
    assert r.status_code == 200
    body = r.json()
    assert {d["name"] for d in body["datasources"]} == {"prometheus", "loki"}
    prom = next(d for d in body["datasources"] if d["name"] == "prometheus")
    assert prom["urls"][0]["url"] == prometheus.url
    assert set(prom["urls"][0]) >= {"status", "latency_ms", "last_error", "consecutive_failures"}
    assert body["probed"] is False


async def test_health_probe_marks_a_live_prometheus_up_with_its_active_url(api, prometheus):
    r = await api.client.get("/api/datasources/health", params={"probe": "true"})
    prom = next(d for d in r.json()["datasources"] if d["name"] == "prometheus")
    assert prom["status"] == "up" and prom["active_url"] == prometheus.url
    assert prom["urls"][0]["status"] == "up" and prom["urls"][0]["latency_ms"] is not None
    assert r.json()["probed"] is True


async def test_health_probe_marks_a_dead_url_down_with_its_error(make_api):
    from tests.support.prometheus import free_port

    async with make_api(prometheus_url=f"http://127.0.0.1:{free_port()}", loki=False) as api:
        body = (await api.client.get("/api/datasources/health?probe=1")).json()
    (prom,) = body["datasources"]
    assert prom["status"] == "down" and body["status"] == "down" and prom["active_url"] is None
    assert prom["urls"][0]["consecutive_failures"] == 1
    assert "ConnectError" in prom["urls"][0]["last_error"]


async def test_collectors_lists_every_detector_with_its_status(api):
    api.store.create_detector({"id": "never", "kind": "zscore"})
    api.store.create_detector({"id": "ran", "kind": "zscore"})
    api.store.record_collection("ran", ok=False, error="boom", samples=3)
    r = await api.client.get("/api/datasources/collectors")
    by_id = {c["detector_id"]: c for c in r.json()["collectors"]}
    assert by_id["never"]["state"] == "never_run"
    assert by_id["ran"]["state"] == "failed" and by_id["ran"]["last_error"] == "boom"
    assert by_id["ran"]["samples"] == 3


# --------------------------------------------------------------------------- Prometheus queries


async def test_instant_query_returns_the_known_value(api, prometheus):
    h = prometheus.history
    r = await api.client.post(
        "/api/datasources/prometheus/query",
        json={"query": 'aiops_test_gauge{instance="a"}', "time": h.timestamp(100)},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["resultType"] == "vector" and body["datasource"] == "prometheus"
    assert body["result"] == [
        {
            "metric": {"__name__": "aiops_test_gauge", "instance": "a"},
            "value": [h.timestamp(100), 100.0],
        }
    ]
    assert body["cached"] is False


async def test_range_query_returns_every_sample_and_the_repeat_comes_from_cache(api, prometheus):
    h = prometheus.history
    req = {
        "query": 'aiops_test_gauge{instance="b"}',
        "start": h.timestamp(10),
        "end": h.timestamp(20),
        "step": "15s",
    }
    first = (await api.client.post("/api/datasources/prometheus/query", json=req)).json()
    assert first["resultType"] == "matrix" and first["cached"] is False
    assert first["result"][0]["values"] == [[h.timestamp(i), 2.0 * i] for i in range(10, 21)]
    second = (await api.client.post("/api/datasources/prometheus/query", json=req)).json()
    assert second["cached"] is True and second["result"] == first["result"]


async def test_rfc3339_and_relative_times_are_accepted(api, prometheus):
    h = prometheus.history
    from datetime import UTC, datetime

    at = datetime.fromtimestamp(h.timestamp(50), UTC).isoformat().replace("+00:00", "Z")
    r = await api.client.post(
        "/api/datasources/prometheus/query",
        json={"query": 'aiops_test_gauge{instance="a"}', "time": at},
    )
    assert r.json()["result"][0]["value"] == [h.timestamp(50), 50.0]
    r = await api.client.post(
        "/api/datasources/prometheus/query",
        json={"query": "vector(1)", "start": "now-5m", "end": "now", "step": "1m"},
    )
    assert r.status_code == 200 and len(r.json()["result"][0]["values"]) in (5, 6)


async def test_bad_promql_is_a_400_with_prometheus_message(api):
    r = await api.client.post("/api/datasources/prometheus/query", json={"query": "sum(rate(x[5m]"})
    assert r.status_code == 400
    body = r.json()
    assert "parse error" in body["error"] and body["detail"]["query"] == "sum(rate(x[5m]"
    assert body["detail"]["upstream_status"] == 400


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"query": "up", "time": "yesterday-ish"}, 422, "time"),
        ({"query": "up", "start": "now-1h", "end": "now"}, 422, "start, end and step"),
        ({"query": "up", "start": "now-1h", "end": "now", "step": "5 parsecs"}, 422, "duration"),
        (
            {"query": "up", "time": "now", "start": "now-1h", "end": "now", "step": 60},
            422,
            "either time",
        ),
        ({"query": ""}, 422, "query"),
        ({"query": 42}, 422, "query"),
        ({"query": "up", "datasource": "staging"}, 400, "unknown datasource 'staging'"),
        ({"query": "up", "datasource": "loki"}, 400, "not prometheus"),
        ({"query": "up", "start": 0, "end": "now", "step": "1s"}, 400, "points per series"),
        ({"query": "up", "start": "now", "end": "now-1h", "step": 60}, 400, "before start"),
        ({"query": "up", "url": "http://evil:9090"}, 422, "unknown field"),
    ],
)
async def test_bad_query_bodies_are_4xx_with_a_message(api, body, status, words):
    r = await api.client.post("/api/datasources/prometheus/query", json=body)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]


async def test_query_builder_only_builds_when_execute_is_false(api):
    body = {
        "metric": "http_requests_total",
        "labels": [{"name": "status", "op": "=~", "value": "5.."}],
        "function": "rate",
        "range": "5m",
        "aggregation": "sum",
        "group_by": ["instance"],
        "execute": False,
    }
    r = await api.client.post("/api/datasources/prometheus/query-builder", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "query": 'sum by (instance) (rate(http_requests_total{status=~"5.."}[5m]))',
        "result": None,
    }


async def test_query_builder_runs_the_built_query_exactly(api, prometheus):
    h = prometheus.history
    body = {
        "metric": "aiops_test_requests_total",
        "labels": [
            {"name": "instance", "value": "a"},
            {"name": "status", "op": "!=", "value": "500"},
        ],
        "function": "rate",
        "range": "5m",
        "group_by": ["instance"],
        "time": h.timestamp(200),
    }
    r = await api.client.post("/api/datasources/prometheus/query-builder", json=body)
    out = r.json()
    assert (
        out["query"]
        == 'sum by (instance) (rate(aiops_test_requests_total{instance="a", status!="500"}[5m]))'
    )
    assert out["result"]["result"] == [
        {"metric": {"instance": "a"}, "value": [h.timestamp(200), pytest.approx(2.0)]}
    ]


async def test_query_builder_rejects_an_impossible_query_with_the_reason(api):
    r = await api.client.post(
        "/api/datasources/prometheus/query-builder", json={"metric": "up", "function": "rate"}
    )
    assert r.status_code == 400
    assert "range" in r.json()["error"]
    r = await api.client.post(
        "/api/datasources/prometheus/query-builder",
        json={"metric": "up", "labels": [{"name": "a", "op": "~~", "value": "x"}]},
    )
    assert r.status_code == 422 and r.json()["detail"]["errors"][0]["field"] == "labels.0.op"


# --------------------------------------------------------------------------- Loki


def _add_lines(loki, now_ns: int, count: int = 5) -> None:
    for i in range(count):
        level = "error" if i % 2 else "info"
        loki.add(
            {"app": "api", "env": "prod"},
            now_ns - (count - i) * NS,
            f"level={level} request {i} took {10 + i}ms",
        )


async def test_loki_endpoints_answer_503_naming_the_setting_when_loki_is_not_configured(make_api):
    async with make_api(loki=False) as api:
        for path, body in [
            (
                "/api/datasources/loki/query",
                {"query": '{app="api"}', "start": "now-1h", "end": "now"},
            ),
            ("/api/datasources/loki/query-builder", {"selector": '{app="api"}'}),
            ("/api/datasources/loki/analyze", {"selector": '{app="api"}'}),
        ]:
            r = await api.client.post(path, json=body)
            assert r.status_code == 503, path
            assert "AIOPS_LOKI_URL" in r.json()["error"]


async def test_loki_log_query_returns_streams(api):
    now = time.time_ns()
    _add_lines(api.loki, now)
    r = await api.client.post(
        "/api/datasources/loki/query",
        json={
            "query": '{app="api"} |= "error"',
            "start": (now - 60 * NS) / NS,
            "end": now / NS,
            "direction": "forward",
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["resultType"] == "streams" and body["entries"] == 2
    assert [e["line"] for e in body["result"]] == [
        "level=error request 1 took 11ms",
        "level=error request 3 took 13ms",
    ]


async def test_loki_metric_query_and_its_400(api):
    now = time.time_ns()
    _add_lines(api.loki, now)
    r = await api.client.post(
        "/api/datasources/loki/query",
        json={"query": 'sum(count_over_time({app="api"}[1m]))', "time": now / NS},
    )
    assert r.status_code == 200, r.text
    assert r.json()["result"][0]["value"][1] == 5.0
    r = await api.client.post("/api/datasources/loki/query", json={"query": '{app="api"}'})
    assert r.status_code == 400 and "range query" in r.json()["error"]


async def test_loki_query_builder_builds_and_runs(api):
    now = time.time_ns()
    _add_lines(api.loki, now)
    body = {
        "labels": [{"name": "app", "value": "api"}],
        "pipeline": [{"type": "line_filter", "op": "|=", "value": "error"}],
    }
    r = await api.client.post(
        "/api/datasources/loki/query-builder", json={**body, "execute": False}
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"query": '{app="api"} |= "error"', "result": None}
    r = await api.client.post("/api/datasources/loki/query-builder", json=body)
    assert r.json()["result"]["entries"] == 2


async def test_analyze_posted_lines_synchronously(api):
    lines = [f"2026-01-01T00:00:{i:02d}Z ERROR db timeout after {100 + i}ms" for i in range(30)]
    lines += [f"2026-01-01T00:01:{i:02d}Z INFO request {i} ok" for i in range(30)]
    r = await api.client.post("/api/datasources/loki/analyze", json={"lines": lines})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mode"] == "sync" and body["lines"] == 60
    assert body["report"]["total_logs"] == 60 and body["report"]["error_count"] == 30
    assert api.runs.calls == []


async def test_analyze_counts_the_custom_patterns_a_log_job_can_have(api):
    lines = [f"2026-01-01T00:00:{i:02d}Z INFO payment {i} declined by bank" for i in range(5)]
    lines += [f"2026-01-01T00:01:{i:02d}Z INFO request {i} ok" for i in range(5)]
    r = await api.client.post(
        "/api/datasources/loki/analyze",
        json={"lines": lines, "patterns": {"payment_declined": "payment .* declined"}},
    )
    assert r.status_code == 200, r.text
    report = r.json()["report"]
    assert report["pattern_counts"] == {"payment_declined": 5}
    # a window handed to Prefect takes them along, as the flow's `patterns` parameter
    r = await api.client.post(
        "/api/datasources/loki/analyze",
        json={
            "selector": '{app="api"}',
            "start": "now-6h",
            "end": "now",
            "patterns": {"slow": "took [0-9]+s"},
        },
    )
    assert r.status_code == 202, r.text
    ((_, params, _),) = api.runs.calls
    assert params["patterns"] == {"slow": "took [0-9]+s"}


@pytest.mark.parametrize(
    ("patterns", "status"),
    [
        ({"bad name!": "x"}, 422),
        ({"empty": ""}, 422),
        ({"backref": "(a)\\1"}, 422),
        ({"open": "(unclosed"}, 400),
    ],
)
async def test_bad_analyze_patterns_are_refused_naming_them(api, patterns, status):
    r = await api.client.post(
        "/api/datasources/loki/analyze", json={"lines": ["x"], "patterns": patterns}
    )
    assert r.status_code == status, r.text
    assert "pattern" in r.json()["error"]


async def test_analyze_a_short_window_reads_loki_and_answers_at_once(api):
    now = time.time_ns()
    _add_lines(api.loki, now, count=6)
    r = await api.client.post(
        "/api/datasources/loki/analyze", json={"selector": '{app="api"}', "since": "5m"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mode"] == "sync" and body["lines"] == 6 and body["report"]["total_logs"] == 6
    assert body["report"]["error_count"] == 3


async def test_analyze_a_long_window_triggers_the_deployment_and_answers_202(api):
    r = await api.client.post(
        "/api/datasources/loki/analyze",
        json={"selector": '{app="api"}', "start": "now-6h", "end": "now"},
    )
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["mode"] == "async" and body["run"]["state"] == "SCHEDULED"
    ((deployment, params, _),) = api.runs.calls
    assert deployment == "analyze-logs/default"
    assert params["selector"] == '{app="api"}' and params["datasource"] == "loki"
    assert body["run"]["id"] in api.runs.runs


async def test_analyze_a_window_with_too_many_lines_goes_to_prefect(make_api):
    async with make_api(options=ApiOptions(analyze_sync_max_lines=3, tail_interval=0.05)) as api:
        _add_lines(api.loki, time.time_ns(), count=5)
        r = await api.client.post(
            "/api/datasources/loki/analyze", json={"selector": '{app="api"}', "since": "10m"}
        )
    assert r.status_code == 202, r.text
    assert "more than 3 lines" in r.json()["reason"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"lines": ["a"], "selector": '{app="x"}'},
        {"lines": "not a list"},
        {"lines": ["a"], "since": "1h"},
        {"selector": '{app="x"}', "since": "1h", "start": "now-1h"},
        {"selector": '{app="x"}', "labels": {"a": "b"}},
        {"selector": '{app="x"}', "since": "-1h"},
    ],
)
async def test_bad_analyze_bodies_are_422(api, body):
    r = await api.client.post("/api/datasources/loki/analyze", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]


async def test_analyze_refuses_more_than_100k_lines(api):
    r = await api.client.post("/api/datasources/loki/analyze", json={"lines": ["x"] * 100_001})
    assert r.status_code == 422 and "lines" in r.json()["error"]
