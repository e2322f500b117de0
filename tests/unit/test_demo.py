"""The demo of ``aiops up``: the workload model, its log lines and history, its state and config."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from aiops.config import load_settings
from aiops.demo.exporter import LogWriter, WorkloadCollector
from aiops.demo.logs import lines_between
from aiops.demo.stack import DemoState, load_history, prometheus_configured, render_config
from aiops.demo.workload import BUCKETS, GRID, INCIDENT_KINDS, QUEUES, SERVICES, Workload
from aiops.errors import ConfigError, InvalidInput
from aiops.sources.files import read_log_file

DAY = 86400.0
T0 = 1_700_000_000.0 - (1_700_000_000.0 % DAY)  # a midnight UTC
REPO = Path(__file__).resolve().parents[2]


def workload(**kw) -> Workload:
    return Workload(**{"seed": 7, "origin": T0, **kw})


def test_the_workload_is_a_deterministic_function_of_seed_and_time():
    a, b, c = workload(), workload(), workload(seed=8)
    t = T0 + 3 * 3600 + 7.5
    assert a.series_at(t) == b.series_at(t)
    assert a.series_at(t) != c.series_at(t)
    assert [i.to_dict() for i in a.incidents(T0, T0 + DAY)] == [
        i.to_dict() for i in b.incidents(T0, T0 + DAY)
    ]


def test_counters_never_decrease_and_history_equals_the_live_values():
    w = workload()
    fams = {f.metric: f for f in w.history(T0 + 3600, T0 + 7200, 15)}
    live = workload()
    for labels, points in fams["demo_http_requests_total"].samples:
        values = [v for _, v in points]
        assert all(b >= a for a, b in zip(values, values[1:]))
        key = f"{labels['service']}|{labels['code']}"
        for ts, v in points[::40]:
            assert live.counters_at(ts)[key] == pytest.approx(v, rel=1e-9, abs=1e-5)
    # between two samples the live counter is interpolated within its grid cell, still rising
    x = [live.counters_at(T0 + 5000 + k * 0.7)["search|200"] for k in range(20)]
    assert all(b > a for a, b in zip(x, x[1:]))


def test_histogram_buckets_are_cumulative_and_end_at_the_request_count():
    c = workload().counters_at(T0 + 12 * 3600)
    for s in SERVICES:
        buckets = [c[f"{s}|le={b}"] for b in BUCKETS] + [c[f"{s}|le=+Inf"]]
        assert all(b >= a for a, b in zip(buckets, buckets[1:]))
        assert c[f"{s}|le=+Inf"] == pytest.approx(c[f"{s}|200"] + c[f"{s}|500"])


def test_one_incident_per_period_inside_it_and_each_kind_shows_in_its_metric():
    w = workload(incident_every=900, incident_duration=240)
    incidents = w.incidents(T0, T0 + 2 * DAY)
    assert len(incidents) == 2 * 96
    assert {i.kind for i in incidents} == set(INCIDENT_KINDS)
    for inc in incidents:
        period = inc.number * 900
        assert period <= inc.start < inc.end <= period + 900
        assert inc.target in (QUEUES if inc.kind == "queue_backlog" else SERVICES)
        mid, before = (inc.start + inc.end) / 2, inc.start - 30
        if inc.kind == "queue_backlog":
            assert (
                w.queue_depth(inc.end - GRID)[inc.target][0]
                > 5 * w.queue_depth(before)[inc.target][0] + 100
            )
            continue
        now, then = w.cells_at(mid)[inc.target], w.cells_at(before)[inc.target]
        if inc.kind == "error_burst":
            assert now["error_ratio"][0] >= 0.08 > 3 * then["error_ratio"][0]
        elif inc.kind == "latency_spike":
            assert now["median"][0] > 3 * then["median"][0]
        else:
            assert now["rate"][0] < 0.5 * then["rate"][0]


def test_the_daily_shape_peaks_in_the_afternoon_and_dips_at_night():
    hours = np.arange(24) * 3600.0 + T0
    load = Workload.load(hours)
    assert 13 <= int(np.argmax(load)) <= 16 and 1 <= int(np.argmin(load)) <= 5
    assert load.max() > 3 * load.min()


def test_bad_schedules_are_refused():
    with pytest.raises(InvalidInput):
        workload(incident_every=30)
    with pytest.raises(InvalidInput):
        workload(incident_every=600, incident_duration=500)


def test_the_exporter_serves_counters_histograms_gauges_and_the_active_incident():
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    w = workload()
    inc = w.incidents(T0, T0 + 3600)[0]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkloadCollector(w, clock=lambda: inc.start + 1))
    families = {
        f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())
    }
    assert families["demo_http_requests"].type == "counter"
    assert families["demo_http_request_duration_seconds"].type == "histogram"
    assert {s.labels["queue"] for s in families["demo_queue_depth"].samples} == set(QUEUES)
    (active,) = families["demo_incident_active"].samples
    assert active.labels == {"kind": inc.kind, "target": inc.target}


def test_log_lines_parse_with_timestamps_and_errors_follow_incidents(tmp_path):
    w = workload()
    burst = next(i for i in w.incidents(T0, T0 + DAY) if i.kind == "error_burst")
    quiet = lines_between(w, burst.start - 300, burst.start - 240)
    during = lines_between(w, burst.start, burst.start + 60)
    path = tmp_path / "app.log"
    path.write_text("\n".join(quiet + during) + "\n")
    frame = read_log_file(path)
    assert len(frame) == len(quiet) + len(during)
    assert frame["timestamp"].is_monotonic_increasing
    assert frame["timestamp"].min().timestamp() >= burst.start - 300
    errors = lambda lines: sum(("error" in x.lower()) for x in lines)  # noqa: E731
    assert errors(during) > 5 * max(1, errors(quiet))
    assert lines_between(w, burst.start, burst.start + 60) == during  # deterministic


def test_the_log_writer_keeps_only_the_last_window(tmp_path):
    path = tmp_path / "app.log"
    writer = LogWriter(workload(), path, keep=60, now=T0 + 10 * 3600)
    for k in range(1, 181):
        writer.tick(T0 + 10 * 3600 + k)
    frame = read_log_file(path)
    assert (
        frame["timestamp"].min().timestamp() >= T0 + 10 * 3600 + 180 - 60 - 10
    )  # trimmed every 10 s
    assert frame["timestamp"].max().timestamp() <= T0 + 10 * 3600 + 180


def test_prometheus_is_configured_only_when_the_user_named_one(monkeypatch, tmp_path):
    for key in ("AIOPS_PROMETHEUS_URL", "AIOPS_CONFIG_FILE", "AIOPS_DATASOURCES"):
        monkeypatch.delenv(key, raising=False)
    assert not prometheus_configured(load_settings())
    monkeypatch.setenv(
        "AIOPS_PROMETHEUS_URL", "http://127.0.0.1:9090"
    )  # even the default URL, when given
    assert prometheus_configured(load_settings())
    monkeypatch.delenv("AIOPS_PROMETHEUS_URL")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("prometheus_url: http://prom:9090\n")
    monkeypatch.setenv("AIOPS_CONFIG_FILE", str(cfg))
    assert prometheus_configured(load_settings())
    cfg.write_text("datasources:\n  staging: {type: prometheus, urls: [http://p:9090]}\n")
    assert prometheus_configured(load_settings())
    cfg.write_text("datasources:\n  logs: {type: loki, urls: [http://l:3100]}\n")
    assert not prometheus_configured(load_settings())


def test_the_rendered_config_merges_the_users_and_refuses_name_clashes(monkeypatch, tmp_path):
    for key in ("AIOPS_PROMETHEUS_URL", "AIOPS_DATASOURCES", "AIOPS_LOG_JOBS"):
        monkeypatch.delenv(key, raising=False)
    user = tmp_path / "mine.yaml"
    user.write_text(
        "timeout_seconds: 12\n"
        "datasources:\n  logs: {type: loki, urls: ['http://l:3100']}\n"
        "log_jobs:\n  - {name: nginx, path: /var/log/nginx.log, every: 1h}\n"
    )
    monkeypatch.setenv("AIOPS_CONFIG_FILE", str(user))
    monkeypatch.setenv("AIOPS_DATA_DIR", str(tmp_path / "data"))
    out = render_config(
        REPO / "deployments/demo/config.yaml",
        tmp_path / "data/demo/config.yaml",
        load_settings(),
        prometheus_url="http://127.0.0.1:9190",
        demo_dir=tmp_path / "data/demo",
    )
    data = yaml.safe_load(out.read_text())
    assert data["timeout_seconds"] == 12 and data["prometheus_url"] == ["http://127.0.0.1:9190"]
    assert set(data["datasources"]) == {"logs", "demo"}
    assert [j["name"] for j in data["log_jobs"]] == ["nginx", "demo-app"]
    assert data["log_jobs"][1]["path"] == str((tmp_path / "data/logs/demo-app.log").resolve())
    monkeypatch.setenv("AIOPS_CONFIG_FILE", str(out))  # the children load it
    settings = load_settings()
    assert settings.datasource_configs()["demo"].urls == ("http://127.0.0.1:9190",)

    user.write_text(
        "prometheus_url: http://mine:9090\ndatasources:\n  demo: {type: loki, urls: ['http://l:3100']}\n"
    )
    monkeypatch.setenv("AIOPS_CONFIG_FILE", str(user))
    with pytest.raises(ConfigError, match="'demo'"):
        render_config(
            REPO / "deployments/demo/config.yaml",
            tmp_path / "x.yaml",
            load_settings(),
            prometheus_url="http://127.0.0.1:9190",
            demo_dir=tmp_path,
        )


def test_the_shipped_demo_detectors_load():
    from aiops.store.detectors_file import load_detectors_file

    specs = load_detectors_file(REPO / "deployments/demo/detectors.yaml")
    assert {s.datasource.name for s in specs} == {"demo"} and all(
        s.status == "running" for s in specs
    )


def test_the_state_keeps_its_origin_and_history_is_loaded_once(tmp_path):
    pytest.importorskip("shutil").which("promtool") or pytest.skip("promtool not installed")
    state_file, data = tmp_path / "workload.json", tmp_path / "prometheus" / "data"
    now = T0 + 5 * DAY + 3600
    open_state = lambda **kw: DemoState.open(  # noqa: E731
        state_file,
        **{
            "seed": 7,
            "incident_every": 900,
            "incident_duration": 240,
            "history_seconds": 7200,
            "prometheus_data": data,
            "now": now,
            **kw,
        },
    )
    state = open_state()
    assert state.origin == math.floor((now - 7200) / DAY) * DAY
    assert (
        load_history(state, state_file, data, labels={"job": "demo"}, history_seconds=7200, now=now)
        > 0
    )
    assert DemoState.load(state_file).loaded_until == now
    again = open_state()
    assert again.origin == state.origin
    assert (
        load_history(
            again, state_file, data, labels={"job": "demo"}, history_seconds=7200, now=now + 30
        )
        == 0
    )
    changed = open_state(seed=8)
    assert changed.origin == now and changed.seed == 8
