"""``/openapi.json`` is generated from the request models; ``/docs`` renders it offline;
schemathesis drives every operation from the document and never sees a 5xx."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from schemathesis import checks
from hypothesis import HealthCheck, settings

from aiops.api import ApiOptions, create_app, operations
from aiops.api.openapi import openapi_document
from aiops.api.models import PromQueryRequest
from tests.api.support import AUTH, LOKI_URL, FakeRuns, make_settings
from tests.support.fakeloki import FakeLoki

pytestmark = pytest.mark.prometheus


async def test_the_document_comes_from_the_request_models(api):
    r = await api.client.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc == openapi_document(operations(), title="aiops API", version=doc["info"]["version"])
    assert doc["openapi"] == "3.1.0"
    op = doc["paths"]["/api/datasources/prometheus/query"]["post"]
    ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    name = ref.rsplit("/", 1)[-1]
    schema = doc["components"]["schemas"][name]
    assert set(schema["properties"]) == set(PromQueryRequest.model_fields)
    assert schema["additionalProperties"] is False
    assert {"400", "401", "413", "422", "500"} <= set(op["responses"])
    assert doc["paths"]["/api/datasources/health"]["get"]["security"] == []
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    expected = {
        ("get", "/api/datasources/health"),
        ("get", "/api/datasources/collectors"),
        ("post", "/api/datasources/prometheus/query"),
        ("post", "/api/datasources/prometheus/query-builder"),
        ("post", "/api/datasources/loki/query"),
        ("post", "/api/datasources/loki/query-builder"),
        ("post", "/api/datasources/loki/analyze"),
        ("post", "/api/datasources/detectors/{id}/datasources"),
        ("delete", "/api/datasources/detectors/{id}/datasources"),
        ("get", "/api/detectors"),
        ("post", "/api/detectors"),
        ("get", "/api/detectors/{id}"),
        ("patch", "/api/detectors/{id}"),
        ("delete", "/api/detectors/{id}"),
        ("get", "/api/detectors/{id}/series"),
        ("get", "/api/anomalies"),
        ("get", "/api/incidents"),
        ("get", "/api/incidents/{id}"),
        ("get", "/api/incidents/{id}/triage"),
        ("post", "/api/runs"),
        ("get", "/api/runs/{id}"),
        ("get", "/api/backfills/{id}"),
        ("get", "/metrics"),
        ("get", "/healthz"),
        ("get", "/openapi.json"),
        ("get", "/docs"),
        ("get", "/"),
    }
    assert {(m, p) for p, ms in doc["paths"].items() for m in ms} == expected
    assert doc["x-websocket"]["path"] == "/api/events/ws"


async def test_docs_is_a_self_contained_page_listing_every_operation(api):
    r = await api.client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    doc = (await api.client.get("/openapi.json")).json()
    for path in doc["paths"]:
        assert f"<code>{path}</code>" in page
    assert "/api/events/ws" in page and "4008" in page
    assert "http://" not in page.replace("http://api.test", "") and "<script" not in page


# --------------------------------------------------------------------------- schemathesis


@pytest.fixture(scope="module")
def fuzzed_app(prometheus, tmp_path_factory):
    """An app whose lifespan schemathesis runs (in its own event loop thread)."""
    from schemathesis.python import asgi

    db = tmp_path_factory.mktemp("fuzz") / "aiops.db"
    loki = FakeLoki()
    http = httpx.AsyncClient(mounts={LOKI_URL: httpx.ASGITransport(app=loki.app)}, timeout=10)
    # schemathesis sends wrong tokens on purpose: keep it from locking itself out (429 is
    # documented and checked in tests/api/test_auth_throttle.py)
    settings_ = make_settings(
        prometheus.url, f"sqlite:///{db}", loki=True, api_auth_failure_limit=1_000_000
    )
    app = create_app(
        settings_,
        http_client=http,
        deployments=FakeRuns(),
        options=ApiOptions(analyze_sync_max_lines=2000),
    )
    yield app
    asgi.shutdown_lifespans()


# The document the app serves (built by the same function from the same operations); loaded
# at import so pytest can parametrise over its operations.
schema = schemathesis.openapi.from_dict(
    openapi_document(operations(), title="aiops API", version="test")
)


# What schemathesis checks on every answer: no 5xx; status codes, content types, headers and
# bodies as documented; data the document forbids is refused; data it allows is not refused
# as malformed (a 422). A 400 is the documented answer for input the schema cannot express (a
# query the datasource refuses, a time range in the wrong order, a detector kind's params).
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
    checks.positive_data_acceptance,
]
schema.config.checks.positive_data_acceptance.expected_statuses = [
    "2xx",
    "400",
    "401",
    "404",
    "409",
    "413",
    "429",
    "503",
]
# Bounded: the schema's examples and 10 generated cases (valid and invalid) per operation, a
# few hundred in all, the same ones every run. (The coverage phase alone is ~2,000 more.)
schema.config.phases.coverage.enabled = False


@schema.parametrize()
@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_the_api_conforms_to_its_document(case, fuzzed_app):
    response = case.call_and_validate(
        app=fuzzed_app, base_url="http://testserver", headers=dict(AUTH), timeout=30, checks=CHECKS
    )
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error", "detail"} and body["error"], body


async def test_a_method_a_path_does_not_have_is_a_405_allowing_all_it_has(api):
    doc = (await api.client.get("/openapi.json")).json()
    for path, methods in doc["paths"].items():
        concrete = path.replace("{id}", "1")
        documented = {m.upper() for m in methods} | ({"HEAD"} if "get" in methods else set())
        for method in {"GET", "POST", "PUT", "PATCH", "DELETE"} - documented:
            r = await api.client.request(method, concrete)
            assert r.status_code == 405, (method, path, r.status_code)
            allow = {m.strip() for m in r.headers["allow"].split(",")}
            assert allow == documented, (method, path, allow)
            assert r.json()["error"] == f"method {method} is not allowed on {concrete}"
