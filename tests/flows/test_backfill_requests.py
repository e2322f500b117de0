"""One backfill request, three ways in: ``aiops backfill``, ``POST /api/runs`` and the flow
itself resolve it with :func:`aiops.backfill.resolve_backfill`, so they refuse the same bad
requests with the same error: a 4xx naming ``parameters.<field>`` in the API, one line and
exit 2 from the command, the same exception class and message from the flow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from aiops.api import ApiOptions, create_app
from aiops.errors import InvalidInput, NotFound
from aiops.backfill import CLI_FIELDS
from flows.backfill import backfill
from tasks._runtime import settings, store
from tests.api.support import AUTH, FakeRuns, running

pytestmark = [pytest.mark.prefect, pytest.mark.prometheus]

HOUR = timedelta(hours=1)
PAST = datetime(2024, 1, 2, tzinfo=UTC)

# (request, error class, a fragment of the message, the field it names)
BAD = [
    (
        {"detector_ids": ["ok"], "start": PAST, "end": PAST - HOUR},
        InvalidInput,
        "end must be after start",
        "end",
    ),
    (
        {"detector_ids": ["ok"], "start": PAST, "end": datetime.now(UTC) + HOUR},
        InvalidInput,
        "end is in the future",
        "end",
    ),
    (
        {"detector_ids": [], "start": PAST - HOUR, "end": PAST},
        InvalidInput,
        "at least one detector",
        "detector_ids",
    ),
    (
        {"detector_ids": ["ok"], "start": PAST - HOUR, "end": PAST, "window": "fortnight"},
        InvalidInput,
        "'fortnight' is not a duration",
        "window",
    ),
    (
        {"detector_ids": ["ok"], "start": PAST - HOUR, "end": PAST, "train": "2h"},
        InvalidInput,
        "training prefix covers the whole range",
        "train",
    ),
    (
        {"detector_ids": ["nope"], "start": PAST - HOUR, "end": PAST},
        NotFound,
        "detector 'nope' not found",
        None,
    ),
    (
        {"detector_ids": ["no-source"], "start": PAST - HOUR, "end": PAST},
        InvalidInput,
        "detector 'no-source' has no datasource",
        "detector_ids",
    ),
    (
        {"detector_ids": ["elsewhere"], "start": PAST - HOUR, "end": PAST},
        InvalidInput,
        "reads datasource 'other', which is not configured (configured: prometheus)",
        "detector_ids",
    ),
    (
        {"detector_ids": ["ok"], "log_jobs": ["nope"], "start": PAST - HOUR, "end": PAST},
        InvalidInput,
        "no log job named 'nope' (configured: none)",
        "log_jobs",
    ),
]
IDS = [
    "end-before-start",
    "future",
    "nothing",
    "bad-window",
    "train-covers",
    "unknown-detector",
    "no-datasource",
    "unconfigured-datasource",
    "unknown-log-job",
]


@pytest.fixture
def detectors(aiops_env, monkeypatch):
    monkeypatch.delenv("AIOPS_LOKI_URL", raising=False)
    db = store()
    query = {"query": 'aiops_test_anomaly{instance="a"}', "step": 15, "lookback": 3600}
    db.create_detector(
        {"id": "ok", "name": "ok", "kind": "zscore", "status": "paused", "datasource": query}
    )
    db.create_detector(
        {"id": "no-source", "name": "no-source", "kind": "zscore", "status": "paused"}
    )
    db.create_detector(
        {
            "id": "elsewhere",
            "name": "elsewhere",
            "kind": "zscore",
            "status": "paused",
            "datasource": {**query, "name": "other"},
        }
    )
    return db


def cli_args(request: dict) -> list[str]:
    args = ["backfill"]
    for det in request.get("detector_ids", []):
        args += ["--detector", det]
    for job in request.get("log_jobs", []):
        args += ["--log-job", job]
    args += [
        "--start",
        f"{request['start']:%Y-%m-%dT%H:%M:%SZ}",
        "--end",
        f"{request['end']:%Y-%m-%dT%H:%M:%SZ}",
    ]
    for name in ("window", "train"):
        if name in request:
            args += [CLI_FIELDS[name], request[name]]
    return args


async def api_answer(db, request: dict) -> httpx.Response:
    config = settings()
    runs = FakeRuns()
    body = {**request, "start": request["start"].isoformat(), "end": request["end"].isoformat()}
    app = create_app(config, store=db, deployments=runs, options=ApiOptions(tail_interval=0.05))
    async with running(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://api.test", headers=AUTH
        ) as client:
            answer = await client.post("/api/runs", json={"flow": "backfill", "parameters": body})
    assert runs.calls == []  # refused before any run was triggered
    return answer


@pytest.mark.parametrize(("request_", "error", "message", "field"), BAD, ids=IDS)
async def test_the_command_the_api_and_the_flow_refuse_the_same_request_the_same_way(
    detectors, monkeypatch, capsys, request_, error, message, field
):
    from tests.api.support import TOKEN

    monkeypatch.setenv("AIOPS_API_TOKEN", TOKEN)
    # the flow
    with pytest.raises(error) as raised:
        await backfill(**request_)
    assert message in raised.value.message
    assert type(raised.value) is error and getattr(raised.value, "field", None) == field

    # the API: the class's status, the message, the field as parameters.<name>
    answer = await api_answer(detectors, request_)
    assert answer.status_code == error.status_code, answer.text
    assert message in answer.json()["error"]
    if field is not None:
        assert answer.json()["detail"]["field"] == f"parameters.{field}"

    # the command: one line naming it, exit 2, no traceback
    from aiops.cli import main

    capsys.readouterr()
    assert main(cli_args(request_)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        err[-1].startswith("aiops: ") and message in err[-1] and "Traceback" not in "\n".join(err)
    )
