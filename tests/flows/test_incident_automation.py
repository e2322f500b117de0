"""The Prefect Automation documented in docs/operations.md works: deployed as written, an
``aiops.incident.opened`` event emitted by aiops (detector as resource, series as related
resource) makes the real Prefect server schedule an ``analyze-logs`` run."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from prefect import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId, FlowRunFilter
from prefect.events import DeploymentEventTrigger

from aiops.store import Store
from flows.logs import analyze_logs
from tasks.publish import emit_incidents
from tests.support.incidents import inject_incident, until

pytestmark = pytest.mark.prefect

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
TIMEOUT = 60


def documented_trigger() -> DeploymentEventTrigger:
    block = re.search(r"<!-- incident-triage:begin -->\s*```yaml\n(.*?)```", DOC.read_text(), re.S)
    assert block, "docs/operations.md lost its incident-triage example"
    (spec,) = yaml.safe_load(block.group(1))["triggers"]
    assert spec.pop("type") == "event"
    return DeploymentEventTrigger(**spec)


async def test_the_documented_automation_starts_a_log_triage_when_an_incident_opens(
    tmp_path, prefect_events
):
    deployment = await analyze_logs.ato_deployment(
        "incident-triage", triggers=[documented_trigger()]
    )
    deployment_id = await deployment.aapply()

    store = Store.open(f"sqlite:///{tmp_path / 'aiops.db'}")
    try:
        detector = store.create_detector(
            {"id": "api-latency", "kind": "zscore", "status": "running"}
        )
        labels = {"app": "api", "instance": "a"}
        opened = datetime.now(UTC).replace(microsecond=0)
        inserted = inject_incident(
            store, "api-latency", labels, opened, score=4.0, value=900.0, expected=120.0
        )
    finally:
        store.close()
    assert emit_incidents(detector, inserted) == 1
    (sent,) = [
        e for e in prefect_events() if e.event == "aiops.incident.opened"
    ]  # waits for the worker
    assert sent.resource.id == "aiops.detector.api-latency"

    flow_runs = FlowRunFilter()
    only_this = DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
    async with get_client() as client:  # the server's trigger service acts within about a second
        runs = await until(
            lambda: client.read_flow_runs(flow_run_filter=flow_runs, deployment_filter=only_this),
            timeout=TIMEOUT,
        )
    (run,) = runs
    assert run.parameters == {"selector": '{app="api"}', "since": "30m"}
