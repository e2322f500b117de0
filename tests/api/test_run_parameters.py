"""POST /api/runs checks every flow's parameters with the flow's own model before the run is
triggered, confines file paths to the allowed log roots, and bounds the parameters' size."""

from __future__ import annotations

import os

import pytest

from tests.api.support import make_detector

pytestmark = pytest.mark.no_prometheus


async def post_run(api, flow, parameters):
    return await api.client.post("/api/runs", json={"flow": flow, "parameters": parameters})


@pytest.mark.parametrize(
    "path",
    ["/etc/passwd", "/proc/self/environ", "/dev/zero", "../../../../etc/shadow"],
)
async def test_analyze_logs_on_a_file_outside_the_log_roots_is_refused_and_never_triggered(
    make_api, tmp_path, path
):
    async with make_api(log_roots=str(tmp_path / "logs")) as api:
        r = await post_run(api, "analyze-logs", {"path": path})
    assert r.status_code == 400, r.text
    body = r.json()
    assert (
        "outside the allowed log roots" in body["error"] and str(tmp_path / "logs") in body["error"]
    )
    assert body["detail"]["field"] == "parameters.path"
    assert api.runs.calls == []


async def test_a_symlink_out_of_a_log_root_and_a_fifo_in_one_are_refused(make_api, tmp_path):
    root = tmp_path / "logs"
    root.mkdir()
    (root / "passwd.log").symlink_to("/etc/passwd")
    os.mkfifo(root / "pipe.log")
    async with make_api(log_roots=str(root)) as api:
        link = await post_run(api, "analyze-logs", {"path": str(root / "passwd.log")})
        fifo = await post_run(api, "analyze-logs", {"path": str(root / "pipe.log")})
        missing = await post_run(api, "analyze-logs", {"path": str(root / "nope.log")})
    assert link.status_code == 400 and "symlink" in link.json()["error"]
    assert fifo.status_code == 400 and "FIFO" in fifo.json()["error"]
    assert missing.status_code == 400 and "not found" in missing.json()["error"]
    assert api.runs.calls == []


async def test_a_file_in_a_log_root_and_a_log_jobs_file_are_triggered(make_api, tmp_path):
    root = tmp_path / "logs"
    root.mkdir()
    (root / "app.log").write_text("2026-01-01T00:00:00Z INFO hello\n")
    job_file = tmp_path / "job.log"
    job_file.write_text("2026-01-01T00:00:00Z INFO hello\n")
    jobs = [{"name": "web", "path": str(job_file)}]
    async with make_api(log_roots=str(root), log_jobs=jobs) as api:
        inside = await post_run(api, "analyze-logs", {"path": str(root / "app.log")})
        job_path = await post_run(api, "analyze-logs", {"path": str(job_file)})
        job = await post_run(api, "analyze-logs", {"job": "web"})
        unknown_job = await post_run(api, "analyze-logs", {"job": "nope"})
    assert inside.status_code == job_path.status_code == job.status_code == 201
    assert (
        unknown_job.status_code == 400 and "no log job named 'nope'" in unknown_job.json()["error"]
    )
    assert [c[1] for c in api.runs.calls] == [
        {"path": str(root / "app.log")},
        {"path": str(job_file)},
        {"job": "web"},
    ]


@pytest.mark.parametrize(
    ("parameters", "words"),
    [
        ({"lines": ["a a"], "patterns": {"twice": r"(a) \1"}}, "parameters.patterns"),
        ({"lines": ["x"], "colour": "red"}, "unknown field"),
        ({}, "give exactly one of selector, path, lines, job or incident"),
        ({"lines": ["x"], "selector": '{app="a"}'}, "give exactly one"),
        ({"lines": ["x"], "since": "soon"}, "parameters.since"),
        ({"lines": ["x"], "bucket": "-1h"}, "parameters.bucket"),
        ({"lines": ["x"], "max_entries": 0}, "parameters.max_entries"),
    ],
)
async def test_bad_analyze_logs_parameters_are_a_422_before_the_run(api, parameters, words):
    r = await post_run(api, "analyze-logs", parameters)
    assert r.status_code == 422, r.text
    assert words in r.text
    assert api.runs.calls == []


async def test_a_window_in_the_wrong_order_is_a_400(api):
    r = await post_run(
        api,
        "analyze-logs",
        {"lines": ["x"], "start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
    )
    assert r.status_code == 400 and "end must be after start" in r.json()["error"]
    assert api.runs.calls == []


async def test_a_backreference_names_the_pattern_and_the_engine(api):
    r = await post_run(api, "analyze-logs", {"lines": ["a a"], "patterns": {"twice": r"(a) \1"}})
    assert r.status_code == 422
    assert "twice" in r.json()["error"] and "RE2" in r.json()["error"]


async def test_a_selector_needs_a_configured_loki(make_api):
    async with make_api(loki=False) as api:
        r = await post_run(api, "analyze-logs", {"selector": '{app="api"}'})
    assert r.status_code == 400 and "AIOPS_LOKI_URL" in r.json()["error"]


async def test_detect_metrics_parameters_are_checked_too(api):
    bad = await post_run(api, "detect-metrics", {"detector_ids": "many"})
    unknown = await post_run(api, "detect-metrics", {"detector_ids": ["ghost"]})
    extra = await post_run(api, "detect-metrics", {"detectors": ["a"]})
    assert bad.status_code == 422 and "parameters.detector_ids" in bad.json()["error"]
    assert unknown.status_code == 404 and "ghost" in unknown.json()["error"]
    assert extra.status_code == 422 and "unknown field" in extra.json()["error"]
    make_detector(api.store, "a")
    ok = await post_run(
        api, "detect-metrics", {"detector_ids": ["a"], "now": "2026-01-01T00:00:00Z"}
    )
    assert ok.status_code == 201
    assert api.runs.calls[-1][1] == {"detector_ids": ["a"], "now": "2026-01-01T00:00:00Z"}


async def test_parameters_over_64_kib_are_a_413_with_the_limit(api):
    lines = ["x" * 1000] * 70
    r = await post_run(api, "analyze-logs", {"lines": lines})
    assert r.status_code == 413, r.text
    assert r.json()["detail"]["limit_bytes"] == 65536 and "at most 65536" in r.json()["error"]
    huge = await api.client.post(
        "/api/runs", json={"flow": "backfill", "parameters": {"detector_ids": ["a"] * 20000}}
    )
    assert huge.status_code == 413
    assert api.runs.calls == []
