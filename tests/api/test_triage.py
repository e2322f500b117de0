"""A detector's log source for triage (saved, validated, cleared) and
``GET /api/incidents/{id}/triage``."""

from __future__ import annotations

import pytest

from tests.api.test_incidents import A, change

pytestmark = pytest.mark.no_prometheus


async def test_a_detector_keeps_its_triage_link_and_a_patch_changes_or_clears_it(api):
    body = {
        "id": "checkout",
        "kind": "zscore",
        "triage": {
            "selector": '{app="$service", env=~"prod|$region"}',
            "lead": "2m",
            "baselines": ["previous", "day"],
        },
    }
    created = await api.client.post("/api/detectors", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["triage"] == {
        "selector": '{app="$service", env=~"prod|$region"}',
        "job": None,
        "path": None,
        "datasource": "loki",
        "lead_seconds": 120,
        "max_window_seconds": 3600,
        "baselines": ["previous", "day"],
    }
    patched = await api.client.patch(
        "/api/detectors/checkout", json={"triage": {"path": "/var/log/app.log"}}
    )
    assert patched.status_code == 200 and patched.json()["triage"]["path"] == "/var/log/app.log"
    cleared = await api.client.patch("/api/detectors/checkout", json={"triage": None})
    assert cleared.status_code == 200 and cleared.json()["triage"] is None
    assert api.store.get_detector("checkout").triage is None


@pytest.mark.parametrize(
    ("triage", "field", "says"),
    [
        ({"selector": "{app=checkout}"}, "triage.selector", "expected a quoted value"),
        ({"selector": '{app="$service"'}, "triage.selector", "expected ',' or '}'"),
        ({"selector": '{app=~"$service("}'}, "triage.selector", ""),
        ({"selector": '{app="a"}', "job": "web"}, "triage", "exactly one of selector, job or path"),
        ({"job": "web"}, "triage.job", "no log job named 'web'"),
        (
            {"selector": '{app="a"}', "datasource": "prometheus"},
            "triage.datasource",
            "no Loki datasource",
        ),
        ({"path": "/x.log", "lead": "2d"}, "triage.lead", "between 0 and 86400"),
        ({"path": "/x.log", "baselines": ["month"]}, "triage.baselines.0", ""),
    ],
)
async def test_a_bad_triage_link_is_a_4xx_naming_its_field(api, triage, field, says):
    answer = await api.client.post(
        "/api/detectors", json={"id": "bad", "kind": "zscore", "triage": triage}
    )
    assert 400 <= answer.status_code < 500, answer.text
    body = answer.json()
    assert field in body["error"] + str(body.get("detail")) and says in body["error"] + str(
        body.get("detail")
    ), body
    assert (await api.client.get("/api/detectors/bad")).status_code == 404


async def test_an_incident_triage_is_served_once_stored_and_404_before(api):
    store = api.store
    store.create_detector({"id": "det-a", "kind": "zscore", "triage": {"selector": '{app="a"}'}})
    store.commit_detection("det-a", incidents=[change(A, 0)])
    (incident,) = store.list_incidents()
    url = f"/api/incidents/{incident.id}/triage"
    missing = await api.client.get(url)
    assert missing.status_code == 404 and "has no triage" in missing.json()["error"]
    assert (await api.client.get("/api/incidents/999/triage")).status_code == 404

    assert (await api.client.get(f"/api/incidents/{incident.id}")).json()["triage"] is None
    store.start_triage(incident.id, source='loki:loki:{app="a"}', flow_run_id="run-1")
    assert (await api.client.get(url)).json()["status"] == "running"
    store.finish_triage(incident.id, error="BadQuery: parse error")
    detail = (await api.client.get(f"/api/incidents/{incident.id}")).json()
    assert detail["triage"] == {
        "status": "failed",
        "source": 'loki:loki:{app="a"}',
        "summary": None,
        "error": "BadQuery: parse error",
        "flow_run_id": "run-1",
    }
    store.start_triage(incident.id, source='loki:loki:{app="a"}', flow_run_id="run-2")
    store.finish_triage(
        incident.id, report={"summary": "1 new error type (TimeoutError)", "findings": []}
    )
    done = (await api.client.get(url)).json()
    assert done["status"] == "done" and done["summary"] == "1 new error type (TimeoutError)"
    assert (
        done["report"]["findings"] == []
        and done["incident_id"] == incident.id
        and done["error"] is None
    )
