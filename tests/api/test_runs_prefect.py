"""``/api/runs`` against a real Prefect server: a deployment of a trivial flow defined here."""

from __future__ import annotations

import uuid

import pytest
from prefect import flow
from prefect.settings import PREFECT_API_URL, temporary_settings

from aiops.api import PrefectRunTrigger
from tests.api.support import make_detector
from tests.support.prometheus import free_port

pytestmark = [pytest.mark.no_prometheus, pytest.mark.prefect]


@flow(name="detect-metrics")
def stand_in_detect(detector_ids: list[str] | None = None) -> int:
    """Same flow name as the real one; never executed here (no worker)."""
    return len(detector_ids or [])


@pytest.fixture(scope="module")
async def deployed(prefect_server):
    deployment = await stand_in_detect.to_deployment("default")
    deployment_id = await deployment.apply()
    return deployment_id


async def test_post_runs_schedules_the_deployment_and_get_reads_its_state(make_api, deployed):
    async with make_api(runs=PrefectRunTrigger()) as api:
        make_detector(api.store, "a")
        r = await api.client.post(
            "/api/runs", json={"flow": "detect-metrics", "parameters": {"detector_ids": ["a"]}}
        )
        assert r.status_code == 201, r.text
        run = r.json()
        assert run["state"] == "SCHEDULED" and run["deployment"] == "detect-metrics/default"
        assert run["parameters"] == {"detector_ids": ["a"]}
        assert run["url"] and run["url"].endswith(f"/runs/flow-run/{run['id']}")
        got = await api.client.get(f"/api/runs/{run['id']}")
        assert got.status_code == 200, got.text
        assert got.json()["id"] == run["id"] and got.json()["state"] == "SCHEDULED"
        assert got.json()["deployment"] == "detect-metrics/default"


async def test_a_missing_deployment_is_a_404_saying_what_to_do(make_api, deployed):
    async with make_api(runs=PrefectRunTrigger()) as api:
        r = await api.client.post(
            "/api/runs", json={"flow": "analyze-logs", "parameters": {"lines": ["x"]}}
        )
        assert r.status_code == 404
        assert "deployment 'analyze-logs/default' not found" in r.json()["error"]
        r = await api.client.get(f"/api/runs/{uuid.uuid4()}")
        assert r.status_code == 404


async def test_an_unreachable_prefect_server_is_a_503(make_api):
    url = f"http://127.0.0.1:{free_port()}/api"
    async with make_api(runs=PrefectRunTrigger(timeout=10)) as api:
        with temporary_settings(updates={PREFECT_API_URL: url}):
            r = await api.client.post("/api/runs", json={"flow": "detect-metrics"})
            assert r.status_code == 503, r.text
            assert (
                "cannot reach the Prefect server" in r.json()["error"] and url in r.json()["error"]
            )
            r = await api.client.get(f"/api/runs/{uuid.uuid4()}")
            assert r.status_code == 503


async def test_no_prefect_api_url_is_a_503_naming_the_setting(make_api):
    async with make_api(runs=PrefectRunTrigger()) as api:
        with temporary_settings(restore_defaults={PREFECT_API_URL}):
            r = await api.client.post("/api/runs", json={"flow": "detect-metrics"})
    assert r.status_code == 503 and "PREFECT_API_URL" in r.json()["error"]


async def test_parameters_the_flow_cannot_take_are_a_4xx_naming_them(make_api, deployed):
    async with make_api(runs=PrefectRunTrigger()) as api:
        r = await api.client.post(
            "/api/runs", json={"flow": "detect-metrics", "parameters": {"detector_ids": "many"}}
        )
        assert 400 <= r.status_code < 500, r.text
        assert "detector_ids" in r.text
