"""/healthz: the unauthenticated readiness probe (`aiops up` waits on it, so a start with
AIOPS_API_TOKEN set becomes ready). It says ready or not ready and nothing else."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.no_prometheus


class DyingStore:
    """Answers while the API starts, then stops answering."""

    dead = False

    def events_after(self, *args, **kwargs):
        return []

    def max_event_id(self):
        if self.dead:
            raise RuntimeError("database is locked: password=hunter2")
        return 0


async def test_healthz_answers_ready_without_the_token(api):
    r = await api.client.get("/healthz", headers={"Authorization": ""})
    assert r.status_code == 200
    assert r.json() == {"status": "ready"}


async def test_healthz_is_503_not_ready_when_the_store_does_not_answer_and_leaks_nothing(make_api):
    store = DyingStore()
    async with make_api(store_override=store) as api:
        store.dead = True
        r = await api.client.get("/healthz", headers={"Authorization": ""})
    assert r.status_code == 503
    assert r.json() == {"status": "not ready"}
    assert "hunter2" not in r.text and "locked" not in r.text


async def test_healthz_is_in_the_openapi_document_as_public(api):
    doc = (await api.client.get("/openapi.json")).json()
    op = doc["paths"]["/healthz"]["get"]
    assert op["security"] == []
    assert {"200", "503"} <= set(op["responses"])
