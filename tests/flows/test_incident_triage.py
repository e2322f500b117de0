"""Incident triage end to end on the real Prefect server: the automation of ``aiops serve`` and
``prefect.yaml`` (``flows.logs.triage_trigger``) starts ``analyze-logs`` once per incident
opened on a detector linked to logs, and the run stores what changed in the logs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prefect import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId, FlowRunFilter
from prefect.flow_engine import run_flow_async

from aiops.errors import BadQuery
from flows.logs import analyze_logs, triage_trigger
from tasks._runtime import store
from tasks.publish import emit_incidents
from tests.support.incidents import inject_incident, until

pytestmark = pytest.mark.prefect

TIMEOUT = 60
NS = 10**9


def spread(start: datetime, end: datetime, n: int) -> list[int]:
    """n timestamps (ns) spread over [start, end)."""
    s, span = int(start.timestamp() * NS), int((end - start).total_seconds() * NS)
    return [s + span * i // n for i in range(n)]


async def runs_of(client, deployment_id) -> list:
    return await client.read_flow_runs(
        flow_run_filter=FlowRunFilter(),
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
    )


@pytest.fixture
async def triage_deployment():
    """``analyze-logs`` deployed with the triage automation; the automation is removed after."""
    deployment = await analyze_logs.ato_deployment("triage-under-test", triggers=[triage_trigger()])
    deployment_id = await deployment.aapply()
    yield deployment_id
    async with get_client() as client:
        await client.delete_resource_owned_automations(f"prefect.deployment.{deployment_id}")
        await client.delete_deployment(deployment_id)


async def test_an_opened_incident_on_a_linked_detector_gets_one_triage_naming_what_changed(
    fake_loki, prefect_events, triage_deployment
):
    now = datetime.now(UTC).replace(microsecond=0)
    opened = now - timedelta(seconds=60)
    incident_from, incident_to = opened - timedelta(minutes=5), now  # lead 5m before the onset
    baseline_from = incident_from - (incident_to - incident_from)  # the same length just before
    stream = {"app": "checkout", "level": "info"}
    for i, ns in enumerate(spread(baseline_from, incident_from, 130)):
        line = (
            f"GET /cart/{i} served in {20 + i % 5}ms" if i % 13 else f"WARN cache miss for key k{i}"
        )
        fake_loki.add(stream, ns, line)
    for i, ns in enumerate(spread(incident_from, incident_to, 260)):
        if i % 2:
            line = f"GET /cart/{i} served in {20 + i % 5}ms"
        elif i % 4 == 0:
            line = f"WARN cache miss for key k{i}"  # 10 in the baseline, 65 now: a rate jump
        else:
            line = (
                f"ERROR java.net.SocketTimeoutException: Read timed out talking to payments-{i % 3}"
            )
        fake_loki.add(stream, ns, line)

    db = store()
    linked = db.create_detector(
        {
            "id": "checkout-errors",
            "kind": "zscore",
            "status": "running",
            "triage": {"selector": '{app="$service"}', "lead": "5m", "baselines": ["previous"]},
        }
    )
    unlinked = db.create_detector({"id": "checkout-latency", "kind": "zscore", "status": "running"})
    labels = {"service": "checkout", "instance": "a"}
    quiet = inject_incident(db, unlinked.id, labels, opened)
    loud = inject_incident(db, linked.id, labels, opened)
    (incident_id,) = [e.payload["incident_id"] for e in loud if e.type == "incident.opened"]
    assert emit_incidents(unlinked, quiet) == 1  # no log source: the automation does not fire
    assert emit_incidents(linked, loud) == 1
    prefect_events()  # both reached the server, the unlinked one first

    async with get_client() as client:
        runs = await until(lambda: runs_of(client, triage_deployment), timeout=TIMEOUT)
        (run,) = runs  # one run, for the linked detector's incident only
        assert run.parameters == {
            "incident": incident_id
        }  # the template rendered, as the flow wants it
        result = await run_flow_async(analyze_logs, flow_run=run, parameters=run.parameters)
        assert (await client.read_flow_run(run.id)).state.is_completed()
        assert len(await runs_of(client, triage_deployment)) == 1

    assert result == {"incident": incident_id, "triage": "done", "summary": result["summary"]}
    triage = db.get_triage(incident_id)
    assert triage.status == "done" and triage.flow_run_id == str(run.id) and triage.error is None
    report = triage.report
    assert report["selector"] == '{app="checkout"}' and report["lines"] == {
        "incident": 260,
        "baseline": 130,
    }
    kinds = {(f["kind"], f.get("template") or f.get("error_type")) for f in report["findings"]}
    assert (
        "new_template",
        "java.net.SocketTimeoutException: Read timed out talking to payments-<NUM>",
    ) in kinds
    assert ("new_error_type", "java.net.SocketTimeoutException") in kinds
    (jump,) = [f for f in report["findings"] if f["kind"] == "rate_jump"]
    assert jump["template"] == "WARN cache miss for key k<NUM>" and (
        jump["count"],
        jump["previous_count"],
    ) == (65, 10)
    new = next(f for f in report["findings"] if f["kind"] == "new_template")
    assert new["logql"]["pattern_filter"].startswith('{app="checkout"} |> ')
    assert new["examples"][0].startswith("ERROR java.net.SocketTimeoutException")
    assert "1 new error type" in triage.summary and "1 rate jump" in triage.summary

    # a second run for the same incident (a replayed event) redoes nothing
    again = await analyze_logs(incident=incident_id)
    assert again["triage"] == "done" and db.get_triage(incident_id).flow_run_id == str(run.id)


async def test_a_file_source_is_cut_into_the_incident_window_and_its_baseline(aiops_env):
    now = datetime.now(UTC).replace(microsecond=0)
    opened = now - timedelta(minutes=2)
    lines = []
    for i in range(240):  # one line a 5 s over the last 20 minutes
        ts = now - timedelta(minutes=20) + timedelta(seconds=5 * i)
        slow = ts >= opened - timedelta(minutes=1)
        lines.append(
            f"{ts.isoformat()} INFO payment authorised in {400 + i % 7 if slow else 40 + i % 7}ms"
        )
    path = aiops_env / "payments.log"
    path.write_text("\n".join(lines) + "\n")
    db = store()
    db.create_detector(
        {
            "id": "payments",
            "kind": "zscore",
            "triage": {"path": str(path), "lead": "1m", "baselines": ["previous", "day"]},
        }
    )
    (event,) = [
        e
        for e in inject_incident(db, "payments", {"app": "payments"}, opened)
        if e.type == "incident.opened"
    ]

    result = await analyze_logs(incident=event.payload["incident_id"])

    report = db.get_triage(event.payload["incident_id"]).report
    assert result["triage"] == "done" and report["source"] == f"file:{path}"
    assert [(b["name"], b["used"]) for b in report["baselines"]] == [
        ("previous", True),
        ("day", False),
    ]
    (slower,) = [f for f in report["findings"] if f["kind"] == "slower"]
    assert slower["p50_ms"]["incident"] > 5 * slower["p50_ms"]["baseline"]
    assert slower["logql"] is None  # a file has no LogQL


async def test_a_failing_log_source_leaves_its_error_on_the_triage_and_the_run_and_the_incident_unharmed(  # noqa: E501
    fake_loki,
):
    opened = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    db = store()
    db.create_detector({"id": "orders", "kind": "zscore", "triage": {"selector": '{app="$app"}'}})
    (event,) = [
        e
        for e in inject_incident(db, "orders", {"app": "orders"}, opened)
        if e.type == "incident.opened"
    ]
    incident_id = event.payload["incident_id"]
    before = db.get_incident(incident_id)
    fake_loki.fail_next = [400]  # Loki refuses the query: never retried

    state = await analyze_logs(incident=incident_id, return_state=True)

    assert state.is_failed()
    with pytest.raises(BadQuery):
        await state.result()
    triage = db.get_triage(incident_id)
    assert triage.status == "failed" and triage.report is None
    assert (
        triage.error.startswith('reading loki:loki:{app="$app"}: BadQuery: ')
        and "injected failure 400" in triage.error
    )
    assert db.get_incident(incident_id) == before


async def test_a_selector_naming_a_label_the_series_lacks_fails_the_triage_clearly(aiops_env):
    opened = datetime.now(UTC).replace(microsecond=0)
    db = store()
    db.create_detector(
        {"id": "carts", "kind": "zscore", "triage": {"selector": '{app="$service"}'}}
    )
    (event,) = [
        e
        for e in inject_incident(db, "carts", {"app": "carts"}, opened)
        if e.type == "incident.opened"
    ]

    state = await analyze_logs(incident=event.payload["incident_id"], return_state=True)

    assert state.is_failed()
    triage = db.get_triage(event.payload["incident_id"])
    assert triage.status == "failed" and "has no label 'service'" in triage.error
