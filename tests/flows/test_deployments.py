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
    assert (
        set(served)
        == set(yaml_deployments())
        == {"detect-metrics/default", "analyze-logs/default", "backfill/default"}
    )


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


def test_every_deployment_has_its_own_limit_and_the_runner_has_room_for_all(tmp_path, monkeypatch):
    """A hung log analysis can fill only the log slots: detection keeps its own."""
    from deployments.serve import runner_limit

    config = tmp_path / "aiops.yaml"
    config.write_text(
        "loki_url: http://127.0.0.1:3100\nlog_jobs:\n  - {name: web, selector: '{app=\"web\"}'}\n"
    )
    monkeypatch.setenv("AIOPS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AIOPS_LOG_RUN_LIMIT", "3")
    settings = load_settings()
    deployments = build_deployments(settings)
    served = {f"{d.flow_name}/{d.name}": d.concurrency_limit for d in deployments}
    assert served == {
        "detect-metrics/default": 1,
        "analyze-logs/default": 3,
        "backfill/default": settings.backfill_run_limit,
        "analyze-logs/job-web": 1,
    }
    assert runner_limit(deployments) == sum(served.values())
    declared = {name: d.get("concurrency_limit") for name, d in yaml_deployments().items()}
    assert all(isinstance(v, int) and v >= 1 for v in declared.values()), declared
    queues = {name: d["work_pool"]["work_queue_name"] for name, d in yaml_deployments().items()}
    assert len(set(queues.values())) == 3, "one work queue per flow"


def test_the_runner_is_started_without_the_apis_token(monkeypatch, tmp_path):
    """Flow runs inherit the serving process' environment: the token must not be in it."""
    import os

    import deployments.serve as serve_module

    monkeypatch.setenv("AIOPS_API_TOKEN", "a-secret-token-0123456789")
    monkeypatch.setenv(
        "PREFECT_SERVER_DATABASE_CONNECTION_URL",
        "postgresql+asyncpg://prefect:secret@127.0.0.1/prefect",
    )
    monkeypatch.setenv(
        "PREFECT_API_URL", "http://127.0.0.1:4200/api"
    )  # a real server: runs need none of its secrets
    monkeypatch.setenv("AIOPS_DATABASE_URL", f"sqlite:///{tmp_path / 'aiops.db'}")
    seen = {}

    def fake_serve(*deployments, limit, **kwargs):
        seen.update(env=dict(os.environ), limit=limit, names=[d.name for d in deployments])

    monkeypatch.setattr(serve_module, "serve", fake_serve)
    assert serve_module.main() == 0
    assert "AIOPS_API_TOKEN" not in seen["env"]
    assert "PREFECT_SERVER_DATABASE_CONNECTION_URL" not in seen["env"]
    assert seen["limit"] == 1 + load_settings().log_run_limit + load_settings().backfill_run_limit


def test_the_incident_triage_automation_is_declared_alike_in_prefect_yaml_and_serve():
    from prefect.events import DeploymentEventTrigger

    from flows.logs import TRIAGE_TRIGGER, triage_trigger

    served = {f"{d.flow_name}/{d.name}": d for d in build_deployments(load_settings())}
    (trigger,) = served["analyze-logs/default"].triggers
    (declared,) = yaml_deployments()["analyze-logs/default"]["triggers"]
    declared = DeploymentEventTrigger(**{k: v for k, v in declared.items() if k != "type"})
    fields = (
        "name",
        "expect",
        "match",
        "match_related",
        "parameters",
        "posture",
        "threshold",
        "enabled",
    )
    assert {f: getattr(trigger, f) for f in fields} == {f: getattr(declared, f) for f in fields}
    assert trigger.name == TRIAGE_TRIGGER and trigger == triage_trigger()
    assert trigger.parameters == {"incident": "{{ event.payload.incident_id }}"}
