"""Flow runs: ``POST /api/runs`` triggers a Prefect deployment by name, ``GET /api/runs/{id}``.

The API never imports ``flows/``: it asks Prefect to run ``<flow>/default`` and returns at
once (``run_deployment(..., timeout=0)``). The trigger is injected (:class:`RunTrigger`), so
tests need no Prefect server; :class:`PrefectRunTrigger` is the real one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

import httpx

from pydantic import ValidationError

from aiops.api.errors import BodyTooLarge, RunnerUnavailable, dumps, validation_error
from aiops.api.models import (
    BackfillParameters,
    BackfillPath,
    BackfillStatus,
    RunPath,
    RunRequest,
    RunResponse,
)
from aiops.api.openapi import Call, Operation
from aiops.errors import AiopsError, Conflict, InvalidInput, NotFound
from aiops.flowparams import (
    FLOW_PARAMETERS,
    MAX_PARAMETERS_BYTES,
    AnalyzeLogsParameters,
    DetectMetricsParameters,
    check_analyze_logs_source,
)
from aiops.timeutil import datetime_from_seconds

__all__ = [
    "RunInfo",
    "RunTrigger",
    "PrefectRunTrigger",
    "deployment_name",
    "OPERATIONS",
    "DEPLOYMENT",
]

log = logging.getLogger(__name__)

DEPLOYMENT = "default"


def deployment_name(flow: str) -> str:
    return f"{flow}/{DEPLOYMENT}"


@dataclass(frozen=True)
class RunInfo:
    id: str
    state: str  # Prefect state type: SCHEDULED, PENDING, RUNNING, COMPLETED, FAILED, ...
    state_name: str | None = None
    flow: str | None = None
    deployment: str | None = None
    url: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    created_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class RunTrigger(Protocol):
    """Starts deployments and reads run states. Raise :class:`NotFound` for a missing
    deployment or run, :class:`RunnerUnavailable` when the orchestrator cannot be reached."""

    async def trigger(
        self, deployment: str, parameters: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> RunInfo: ...

    async def status(self, run_id: UUID) -> RunInfo: ...


class PrefectRunTrigger:
    """The real trigger: ``run_deployment(name, timeout=0, as_subflow=False)`` on the Prefect
    server named by ``PREFECT_API_URL``. Prefect is imported on first use only."""

    def __init__(self, *, timeout: float = 30.0) -> None:
        self.timeout = timeout

    @staticmethod
    def _api_url() -> str:
        from prefect.settings import PREFECT_API_URL

        url = PREFECT_API_URL.value()
        if not url:
            # Without it Prefect would boot a temporary server inside this process per call.
            raise RunnerUnavailable(
                "no Prefect server configured: set PREFECT_API_URL (e.g. "
                "http://127.0.0.1:4200/api); `aiops up` sets it for you"
            )
        return str(url)

    async def trigger(
        self, deployment: str, parameters: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> RunInfo:
        from prefect.deployments import arun_deployment

        api = self._api_url()
        async with self._errors(api, deployment=deployment):
            run = await asyncio.wait_for(
                arun_deployment(
                    deployment,
                    parameters=dict(parameters),
                    timeout=0,
                    as_subflow=False,
                    idempotency_key=idempotency_key,
                ),
                self.timeout,
            )
        return self._info(run, deployment)

    async def status(self, run_id: UUID) -> RunInfo:
        from prefect.client.orchestration import get_client

        api = self._api_url()
        async with self._errors(api, run_id=str(run_id)):
            async with get_client() as client:
                run = await asyncio.wait_for(client.read_flow_run(run_id), self.timeout)
                name = None
                if run.deployment_id is not None:
                    try:
                        dep = await client.read_deployment(run.deployment_id)
                        flow = await client.read_flow(dep.flow_id)
                        name = f"{flow.name}/{dep.name}"
                    except Exception:  # the deployment may be gone; the run is still worth showing
                        name = None
        return self._info(run, name)

    @contextlib.asynccontextmanager
    async def _errors(self, api: str, **context: Any) -> AsyncIterator[None]:
        try:
            yield
        except AiopsError:
            raise
        except Exception as exc:
            translated = self._translate(exc, api, **context)
            if translated is exc:
                raise
            raise translated from None

    @staticmethod
    def _translate(exc: BaseException, api: str, **context: Any) -> BaseException:
        from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

        deployment = context.get("deployment")
        if isinstance(exc, ObjectNotFound):
            if deployment:
                return NotFound(
                    f"deployment {deployment!r} not found on the Prefect server: deploy it first "
                    "(`aiops up` serves every deployment; or `prefect deploy --all`)",
                    deployment=deployment,
                )
            return NotFound(
                f"flow run {context.get('run_id')} not found", run=context.get("run_id")
            )
        if isinstance(exc, PrefectHTTPStatusError):
            status = exc.response.status_code
            try:
                detail = exc.response.json().get("detail")
            except Exception:
                detail = exc.response.text[:500]
            if status == 404:
                return NotFound(f"not found on the Prefect server: {detail}", **context)
            if status == 409:
                return Conflict(f"Prefect refused the run: {detail}", **context)
            if 400 <= status < 500:
                return InvalidInput(
                    f"Prefect refused the run parameters: {detail}", field="parameters", **context
                )
            return RunnerUnavailable(
                f"the Prefect server at {api} answered HTTP {status}: {detail}", **context
            )
        if isinstance(exc, (httpx.TransportError, OSError, TimeoutError, asyncio.TimeoutError)):
            return RunnerUnavailable(
                f"cannot reach the Prefect server at {api}: {type(exc).__name__}: {exc}".rstrip(
                    ": "
                ),
                **context,
            )
        if isinstance(exc, RuntimeError) and "api" in str(exc).lower():
            return RunnerUnavailable(f"Prefect server problem at {api}: {exc}", **context)
        return exc

    @staticmethod
    def _info(run: Any, deployment: str | None) -> RunInfo:
        from prefect.utilities.urls import url_for

        state = run.state
        try:
            url = url_for("flow-run", obj_id=run.id)
        except Exception:
            url = None
        return RunInfo(
            id=str(run.id),
            state=str(state.type.value) if state is not None else "UNKNOWN",
            state_name=state.name if state is not None else None,
            flow=deployment.split("/", 1)[0] if deployment else None,
            deployment=deployment,
            url=url,
            parameters=dict(run.parameters or {}),
            created_at=run.created.isoformat() if getattr(run, "created", None) else None,
        )


# --------------------------------------------------------------------------- endpoints


async def _trigger(
    state: Any, deployment: str, parameters: Mapping[str, Any], key: str | None
) -> RunInfo:
    log.info("triggering deployment %s", deployment, extra={"job": deployment})
    return await state.runs.trigger(deployment, parameters, idempotency_key=key)


async def backfill_parameters(state: Any, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Check a backfill's parameters as the flow will (:func:`aiops.backfill.resolve_backfill`:
    times, windows, detectors with a configured datasource, configured log jobs), so bad ones
    are a 4xx naming ``parameters.<field>`` now rather than a failed run later; returns them
    with the backfill id filled in."""

    from aiops.backfill import API_FIELDS, resolve_backfill

    try:
        p = BackfillParameters.model_validate(raw)
    except ValidationError as exc:
        raise validation_error(exc, "parameters") from None
    resolved = await state.db(
        lambda: resolve_backfill(
            detector_ids=p.detector_ids,
            log_jobs=p.log_jobs,
            start=datetime_from_seconds(p.start, field="start"),
            end=datetime_from_seconds(p.end, field="end"),
            window=p.window,
            train=p.train,
            log_window=p.log_window,
            backfill_id=p.backfill_id,
            settings=state.settings,
            get_detector=state.store.get_detector,
            fields=API_FIELDS,
        )
    )
    return {
        **p.model_dump(exclude_none=True),
        "start": resolved.request.start.isoformat(),
        "end": resolved.request.end.isoformat(),
        "backfill_id": resolved.backfill_id,
    }


async def run_parameters(state: Any, flow: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """A run's parameters checked with the model the flow itself uses (and against the
    settings and the store: allowed files, configured jobs and datasources, known detectors),
    so a bad one is a 4xx now rather than a failed run; at most 64 KiB of JSON."""
    size = len(dumps(raw))
    if size > MAX_PARAMETERS_BYTES:
        raise BodyTooLarge(
            f"the run parameters are {size} bytes of JSON; at most {MAX_PARAMETERS_BYTES} "
            "(analyse many posted lines with POST /api/datasources/loki/analyze instead)",
            limit_bytes=MAX_PARAMETERS_BYTES,
        )
    if flow == "backfill":
        return await backfill_parameters(state, raw)
    try:
        p = FLOW_PARAMETERS[flow].model_validate(raw)
    except ValidationError as exc:
        raise validation_error(exc, "parameters") from None
    if isinstance(p, AnalyzeLogsParameters):
        check_analyze_logs_source(p, state.settings)
    elif isinstance(p, DetectMetricsParameters):
        for det_id in p.detector_ids or ():
            await state.db(state.store.get_detector, det_id)  # NotFound -> 404
    return p.model_dump(mode="json", exclude_unset=True)


async def create_run(call: Call) -> Any:
    body: RunRequest = call.body
    parameters = await run_parameters(call.state, body.flow, body.parameters)
    info = await _trigger(call.state, deployment_name(body.flow), parameters, body.idempotency_key)
    return 201, RunResponse(**info.to_dict())


async def backfill_status(call: Call) -> Any:
    path: BackfillPath = call.path
    progress = await call.state.db(call.state.store.backfill_progress, path.id)
    found = await call.state.db(call.state.store.backfill_anomaly_count, path.id)
    return BackfillStatus(backfill_id=path.id, anomalies=found, **progress.model_dump())


async def get_run(call: Call) -> Any:
    path: RunPath = call.path
    info = await call.state.runs.status(path.id)
    return RunResponse(**info.to_dict())


OPERATIONS = [
    Operation(
        "POST",
        "/api/runs",
        create_run,
        "Trigger a flow run (detect-metrics, analyze-logs, backfill)",
        "runs",
        body=RunRequest,
        responses={201: RunResponse},
        errors=(400, 404, 409, 413, 422, 503),
        description="Runs the deployment `<flow>/default` on the Prefect server and returns at "
        "once with the run id, its state and the Prefect UI link. A missing deployment is a 404; "
        "an unreachable Prefect server a 503. Every flow's parameters are checked first with the "
        "model the flow uses (a 422 names the bad parameter, a 400 or 404 what the settings or "
        "the store refuse; at most 64 KiB of JSON, else 413): `detect-metrics` (`detector_ids`, "
        "`now`); `analyze-logs` (one of `selector`, `path`, `lines`, `job`; `datasource`, "
        "`since`, `start`, `end`, `bucket`, `patterns` in RE2 syntax, `max_entries`; a `path` "
        "must be a regular file under `AIOPS_LOG_ROOTS` or a log job's file); `backfill` "
        "(`detector_ids`, `log_jobs`, `start`, `end`, `window`, `train`, `log_window`, "
        "`backfill_id`, `max_windows`, `emit_events`), whose answer's `parameters.backfill_id` "
        "names the backfill for `GET /api/backfills/{id}`.",
    ),
    Operation(
        "GET",
        "/api/backfills/{id}",
        backfill_status,
        "A backfill's progress: detector windows done, pending, failed",
        "runs",
        path_params=BackfillPath,
        responses={200: BackfillStatus},
        errors=(404, 422),
    ),
    Operation(
        "GET",
        "/api/runs/{id}",
        get_run,
        "A flow run's state",
        "runs",
        path_params=RunPath,
        responses={200: RunResponse},
        errors=(404, 422, 503),
    ),
]
