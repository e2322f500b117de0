"""prefect.yaml and deployments/serve.py declare the same deployments, and both load."""

from __future__ import annotations

import importlib
from pathlib import Path

import yaml
from prefect import Flow

from aiops.config import load_settings
from deployments.serve import build_deployments

ROOT = Path(__file__).resolve().parents[2]


def yaml_deployments() -> dict[str, dict]:
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    out = {}
    for d in spec["deployments"]:
        path, func = d["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        flow = getattr(module, func)
        assert isinstance(flow, Flow), d["entrypoint"]
        out[f"{flow.name}/{d['name']}"] = d
    return out


def test_prefect_yaml_and_serve_declare_the_same_deployments():
    served = {f"{d.flow_name}/{d.name}": d for d in build_deployments(load_settings())}
    assert set(served) == set(yaml_deployments()) == {"detect-metrics/default", "analyze-logs/default", "backfill/default"}


def test_each_configured_log_job_becomes_a_scheduled_deployment(tmp_path, monkeypatch):
    config = tmp_path / "aiops.yaml"
    config.write_text(
        "loki_url: http://127.0.0.1:3100\n"
        "log_jobs:\n"
        "  - {name: api-errors, selector: '{app=\"api\"}', every: 15m}\n"
        "  - {name: nginx, path: /var/log/nginx/access.log, every: 1h, since: 2h}\n"
    )
    monkeypatch.setenv("AIOPS_CONFIG_FILE", str(config))
    served = {f"{d.flow_name}/{d.name}": d for d in build_deployments(load_settings())}
    job = served["analyze-logs/job-api-errors"]
    assert job.parameters == {"job": "api-errors"}
    assert job.schedules[0].schedule.interval.total_seconds() == 900
    assert served["analyze-logs/job-nginx"].schedules[0].schedule.interval.total_seconds() == 3600


def test_detect_metrics_ticks_on_the_same_interval_in_both():
    settings = load_settings()
    served = {f"{d.flow_name}/{d.name}": d for d in build_deployments(settings)}
    tick = served["detect-metrics/default"].schedules[0].schedule.interval.total_seconds()
    (declared,) = yaml_deployments()["detect-metrics/default"]["schedules"]
    assert tick == declared["interval"] == settings.tick_seconds


def test_expired_cached_results_are_pruned_and_fresh_ones_kept(tmp_path):
    import os
    import time

    from prefect.settings import PREFECT_RESULTS_LOCAL_STORAGE_PATH, temporary_settings

    from tasks._runtime import prune_result_storage

    old, fresh = tmp_path / "old-key", tmp_path / "fresh-key"
    old.write_text("{}")
    fresh.write_text("{}")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    with temporary_settings({PREFECT_RESULTS_LOCAL_STORAGE_PATH: tmp_path}):
        assert prune_result_storage(3600) == 1
    assert not old.exists() and fresh.exists()
