"""Incidents reach the on-call tools: the shipped Prometheus rules on the real Prometheus
scraping the API, and direct delivery to Debian's real Alertmanager (API v2)."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from aiops.alertmanager import AlertForwarder, AlertmanagerClient
from aiops.api import ApiOptions, create_app
from aiops.errors import DatasourceUnavailable
from aiops.localprom import binaries, free_port, run_prometheus
from aiops.sources.http import RetryPolicy
from aiops.store import Store, series_key
from tests.api.support import make_settings, serve
from tests.support.alertmanager import run_alertmanager
from tests.support.incidents import until as poll_until

pytestmark = pytest.mark.prometheus

RULES = Path(__file__).resolve().parents[2] / "deployments" / "prometheus" / "aiops-rules.yml"
TIMEOUT = 60
LABELS = {"app": "checkout", "instance": "a"}


def opened(store: Store, detector: str, at: datetime, *, score: float = 4.0) -> int:
    store.commit_detection(
        detector,
        incidents=[
            {
                "series_key": series_key(LABELS),
                "labels": LABELS,
                "opened_at": at,
                "opened": True,
                "last_anomalous_at": at,
                "resolved_at": None,
                "points": 1,
                "peak": {"ts": at, "score": score, "value": 9.0, "expected": 1.0},
            }
        ],
    )
    (incident,) = [i for i in store.list_incidents(detector) if i.opened_at == at]
    return incident.id


def resolve(store: Store, detector: str, at: datetime, resolved: datetime) -> None:
    store.commit_detection(
        detector,
        incidents=[
            {
                "series_key": series_key(LABELS),
                "labels": LABELS,
                "opened_at": at,
                "opened": False,
                "last_anomalous_at": None,
                "resolved_at": resolved,
                "points": 0,
                "peak": None,
            }
        ],
    )


async def until(condition, what: str):
    """Poll ``condition()`` (sync, in a thread) until it returns something truthy, bounded."""
    return await poll_until(lambda: asyncio.to_thread(condition), timeout=TIMEOUT)


def test_the_shipped_rules_file_is_clean_under_promtool():
    _, promtool = binaries()
    checked = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


async def test_the_rules_fire_on_an_open_incident_scraped_from_the_api_and_clear_when_it_resolves(
    prometheus, tmp_path
):
    store = Store.open(f"sqlite:///{tmp_path / 'aiops.db'}")
    settings = make_settings(
        prometheus.url,
        f"sqlite:///{tmp_path / 'aiops.db'}",
        token=None,
        public_url="https://aiops.example",
    )
    store.create_detector({"id": "checkout-latency", "kind": "zscore", "status": "running"})
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    incident = opened(store, "checkout-latency", start)
    app = create_app(settings, store=store, options=ApiOptions(tail_interval=0.05))
    try:
        async with serve(app) as api:
            with run_prometheus(
                tmp_path / "prom",
                scrape_targets={"aiops": [api]},
                scrape_interval="1s",
                rule_files=[RULES],
            ) as prom:

                def firing():
                    alerts = httpx.get(f"{prom.url}/api/v1/alerts", timeout=5).json()["data"][
                        "alerts"
                    ]
                    return [
                        a
                        for a in alerts
                        if a["labels"]["alertname"] == "AiopsIncident" and a["state"] == "firing"
                    ]

                (alert,) = await until(firing, "the alert fires")
                labels = alert["labels"]
                assert (
                    labels["detector"],
                    labels["series"],
                    labels["severity"],
                    labels["incident"],
                ) == ("checkout-latency", series_key(LABELS), "critical", str(incident))
                assert "url" not in labels
                assert (
                    alert["annotations"]["url"] == f"https://aiops.example/#/incidents/{incident}"
                )
                assert alert["annotations"]["summary"].startswith(
                    f"checkout-latency: incident {incident} on "
                )

                resolve(store, "checkout-latency", start, start + timedelta(seconds=30))
                await until(lambda: not firing(), "the alert clears")
    finally:
        store.close()


async def test_incidents_are_delivered_to_alertmanager_firing_then_resolved_with_the_triage_summary(
    store, tmp_path
):
    store.create_detector(
        {
            "id": "checkout-errors",
            "kind": "zscore",
            "status": "running",
            "triage": {"selector": '{app="$app"}'},
        }
    )
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    incident = opened(store, "checkout-errors", start, score=2.0)
    port = free_port()

    async def db(fn, *args, **kwargs):
        return await asyncio.to_thread(fn, *args, **kwargs)

    async with httpx.AsyncClient() as http:
        client = AlertmanagerClient(
            http,
            [f"http://127.0.0.1:{port}"],
            retry=RetryPolicy(attempts=2, initial_seconds=0, jitter_seconds=0),
        )
        forwarder = AlertForwarder(
            store, client, base_url="http://127.0.0.1:8000", interval=30, db=db
        )

        with pytest.raises(
            DatasourceUnavailable, match="unreachable"
        ):  # Alertmanager is down: nothing is lost
            await forwarder.cycle()
        assert forwarder.failures == 1 and forwarder.firing == {}

        with run_alertmanager(tmp_path / "am", port=port) as am:
            assert await forwarder.cycle() == 1  # the retry delivers it
            store.start_triage(incident, source="loki", flow_run_id="run-1")
            store.finish_triage(
                incident, report={"summary": "1 new error type (TimeoutError)", "findings": []}
            )
            assert await forwarder.cycle() == 1  # sent again, with the triage: still one alert
            (alert,) = await asyncio.to_thread(am.alerts)
            assert alert["labels"] == {
                "alertname": "AiopsIncident",
                "detector": "checkout-errors",
                "series": series_key(LABELS),
                "severity": "warning",
                "incident": str(incident),
            }
            assert alert["annotations"]["triage"] == "1 new error type (TimeoutError)"
            assert alert["annotations"]["url"] == f"http://127.0.0.1:8000/#/incidents/{incident}"
            assert alert["status"]["state"] == "active" and alert["startsAt"].startswith(
                start.strftime("%Y-%m-%dT%H:%M:%S")
            )

            # the peak grows critical: the alert moves to the new severity, the old one resolves
            store.commit_detection(
                "checkout-errors",
                incidents=[
                    {
                        "series_key": series_key(LABELS),
                        "labels": LABELS,
                        "opened_at": start,
                        "opened": False,
                        "last_anomalous_at": start + timedelta(seconds=30),
                        "resolved_at": None,
                        "points": 1,
                        "peak": {
                            "ts": start + timedelta(seconds=30),
                            "score": 9.0,
                            "value": 20.0,
                            "expected": 1.0,
                        },
                    }
                ],
            )
            assert store.get_incident(incident).severity == "critical"
            assert await forwarder.cycle() == 2
            (alert,) = await asyncio.to_thread(am.alerts)
            assert alert["labels"]["severity"] == "critical"

            resolve(store, "checkout-errors", start, start + timedelta(seconds=60))
            assert await forwarder.cycle() == 1  # resolved once
            assert await asyncio.to_thread(am.alerts) == []  # no longer active
            assert await forwarder.cycle() == 0  # and not sent again


async def test_the_api_keeps_alertmanager_in_step_when_configured(make_api, store, tmp_path):
    store.create_detector({"id": "checkout-latency", "kind": "zscore", "status": "running"})
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    incident = opened(store, "checkout-latency", start)
    with run_alertmanager(tmp_path / "am") as am:
        async with make_api(alertmanager_url=am.url, alertmanager_interval_seconds=1):
            (alert,) = await until(am.alerts, "the API delivers the open incident")
            assert alert["labels"]["incident"] == str(incident)
            resolve(store, "checkout-latency", start, start + timedelta(seconds=30))
            await until(lambda: not am.alerts(), "the API delivers its resolution")
