"""The Starlette application: ``create_app(settings)``.

The lifespan owns the resources and handlers borrow them (``request.app.state.api``, an
:class:`ApiState`): the ``httpx.AsyncClient`` shared by every datasource client, the store
(sync SQLAlchemy, called through ``anyio.to_thread``), the event tailer (:class:`EventHub`)
and the metrics registry. Anything passed in (``store``, ``http_client``, ``deployments``) is
borrowed and left open; anything created here is closed at shutdown.

Middleware, outermost first: errors -> metrics -> body size limit -> bearer token -> routes.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, cast

import anyio
import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import HTMLResponse, Response
from starlette.routing import WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from aiops.api import anomalies, datasources, detectors, incidents, page, runs, series
from aiops.api.auth import AuthMiddleware, FailureLimit
from aiops.api.errors import BodyTooLarge, JSONResponse, error_response, exception_handlers
from aiops.api.events import EventHub, websocket_endpoint
from aiops.api.metrics import ApiMetrics, MetricsMiddleware
from aiops.api.models import ReadinessResponse
from aiops.api.openapi import Call, Operation, docs_html, openapi_document, operation_routes
from aiops.api.runs import PrefectRunTrigger, RunTrigger
from aiops.config import DatasourceConfig, Settings
from aiops.errors import DatasourceUnavailable, InvalidInput
from aiops.api.health import HealthProber
from aiops.sources import build_client

if TYPE_CHECKING:
    from aiops.sources.loki import LokiClient
    from aiops.sources.prometheus import PrometheusClient
    from aiops.store import Store

_T = TypeVar("_T")

__all__ = ["create_app", "ApiOptions", "ApiState", "operations", "HEALTHZ_PATH"]

log = logging.getLogger("aiops.api")


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("aiops")
    except Exception:
        return "0.0.0"


METRICS_PATH = "/metrics"
HEALTHZ_PATH = "/healthz"


@dataclass(frozen=True)
class ApiOptions:
    """API knobs that are not (yet) settings; defaults suit production."""

    max_body_bytes: int = 10 * 1024 * 1024
    analyze_sync_max_seconds: float = 3600.0
    analyze_sync_max_lines: int = 50_000
    max_points_per_series: int = 110_000
    probe_timeout: float = 5.0
    tail_interval: float = 0.25
    tail_batch: int = 500
    ws_buffer: int = 4096
    ws_heartbeat_seconds: float = 15.0
    series_max_points: int = 11_000  # per series in a chart's range
    series_max_series: int = 20
    series_max_warmup_points: int = 20_000


@dataclass
class ApiState:
    """What handlers borrow. Built by the lifespan."""

    settings: Settings
    options: ApiOptions
    store: Store
    http: httpx.AsyncClient
    configs: dict[str, DatasourceConfig]
    clients: dict[str, PrometheusClient | LokiClient]
    runs: RunTrigger
    hub: EventHub
    metrics: ApiMetrics
    openapi: dict[str, Any] = field(default_factory=dict)
    prober: HealthProber | None = None

    async def db(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Call a sync store method in a worker thread."""
        return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs))

    def datasource_config(self, name: str) -> DatasourceConfig:
        config = self.configs.get(name)
        if config is None:
            known = ", ".join(sorted(self.configs)) or "none"
            raise InvalidInput(
                f"unknown datasource {name!r}: reference a configured datasource by name "
                f"(configured: {known})",
                field="datasource",
            )
        return config

    def _typed(self, name: str, kind: str) -> PrometheusClient | LokiClient:
        config = self.datasource_config(name)
        if config.type != kind:
            raise InvalidInput(
                f"datasource {name!r} is a {config.type} datasource, not {kind}", field="datasource"
            )
        return self.clients[name]

    def prometheus(self, name: str = "prometheus") -> PrometheusClient:
        return cast("PrometheusClient", self._typed(name, "prometheus"))  # its type is checked

    def loki(self, name: str = "loki") -> LokiClient:
        if not any(c.type == "loki" for c in self.configs.values()):
            raise DatasourceUnavailable(
                "no Loki datasource is configured: set AIOPS_LOKI_URL (or add a datasource of "
                "type loki to the config file)",
                datasource=name,
            )
        return cast("LokiClient", self._typed(name, "loki"))


def operations() -> list[Operation]:
    """Every HTTP operation of the API (``/metrics``, ``/openapi.json`` and ``/docs`` included)."""
    return [
        *datasources.OPERATIONS,
        *detectors.OPERATIONS,
        *series.OPERATIONS,
        *anomalies.OPERATIONS,
        *incidents.OPERATIONS,
        *runs.OPERATIONS,
        *page.OPERATIONS,
        Operation(
            "GET",
            METRICS_PATH,
            _metrics,
            "Prometheus metrics of the service",
            "service",
            responses={200: "text/plain"},
            errors=(),
            public=True,
            description="Requests, latencies, datasource cache hits/retries/failovers, "
            "WebSocket clients and events sent, aiops_anomaly_score per detector and series, "
            "aiops_incident_open per open incident and aiops_incidents_total per detector.",
        ),
        Operation(
            "GET",
            HEALTHZ_PATH,
            _healthz,
            "Readiness of the API (no token needed)",
            "service",
            responses={200: ReadinessResponse, 503: ReadinessResponse},
            errors=(),
            public=True,
            description="200 `ready` once the API has started and its store answers, 503 `not "
            "ready` otherwise. Says nothing else (no versions, settings or errors): safe without "
            "a token, for `aiops up`, load balancers and orchestrators.",
        ),
        Operation(
            "GET",
            "/openapi.json",
            _openapi,
            "This OpenAPI document",
            "service",
            responses={200: None},
            errors=(),
        ),
        Operation(
            "GET",
            "/docs",
            _docs,
            "Human-readable API reference (HTML)",
            "service",
            responses={200: "text/html"},
            errors=(),
        ),
    ]


async def _metrics(call: Call) -> Response:
    body = await anyio.to_thread.run_sync(call.state.metrics.render)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


async def _healthz(call: Call) -> Any:
    try:
        await call.state.db(call.state.store.max_event_id)
    except Exception as exc:  # the probe's answer is the point: never a 500
        log.warning("readiness probe: the store does not answer (%s)", type(exc).__name__)
        return 503, ReadinessResponse(status="not ready")
    return ReadinessResponse(status="ready")


async def _openapi(call: Call) -> Response:
    return JSONResponse(call.state.openapi)


async def _docs(call: Call) -> Response:
    return HTMLResponse(docs_html(call.state.openapi))


class BodyLimitMiddleware:
    """413 with the limit for bodies over ``limit`` bytes (Content-Length or streamed)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    too_big = False
                if too_big:
                    await self._refuse(scope, receive, send)
                    return
        received = 0

        async def limited() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self._message(), limit_bytes=self.limit)
            return message

        await self.app(scope, limited, send)

    def _message(self) -> str:
        return f"request body too large: the limit is {self.limit} bytes"

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, self._message(), {"limit_bytes": self.limit}, {"Connection": "close"}
        )
        await response(scope, receive, send)


def create_app(
    settings: Settings,
    *,
    store: Any = None,
    http_client: httpx.AsyncClient | None = None,
    deployments: RunTrigger | None = None,
    options: ApiOptions | None = None,
) -> Starlette:
    """The API. ``store``/``http_client``/``deployments`` are borrowed when given (tests inject
    them), otherwise created from ``settings`` by the lifespan and closed at shutdown."""
    opts = options or ApiOptions()
    ops = operations()
    document = openapi_document(ops, title="aiops API", version=_version())
    holder: dict[str, Any] = {}
    metrics_clients = lambda: holder.get("clients", {})  # noqa: E731
    metrics_store = lambda: holder.get("store")  # noqa: E731
    metrics_hub = lambda: holder.get("hub")  # noqa: E731
    metrics = ApiMetrics(
        clients=metrics_clients,
        store=metrics_store,
        hub=metrics_hub,
        public_url=settings.resolved_public_url(),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            http = http_client
            if http is None:
                http = await stack.enter_async_context(
                    httpx.AsyncClient(
                        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20)
                    )
                )
            db = store
            if db is None:
                db = await anyio.to_thread.run_sync(_open_store, settings)
                stack.callback(db.close)
            configs = settings.datasource_configs()
            clients = {name: build_client(cfg, settings, http) for name, cfg in configs.items()}
            hub = EventHub(
                db,
                poll_interval=opts.tail_interval,
                batch=opts.tail_batch,
                capacity=opts.ws_buffer,
                heartbeat_seconds=opts.ws_heartbeat_seconds,
            )
            await hub.start()
            stack.push_async_callback(hub.stop)
            prober = HealthProber(
                clients, db, interval=settings.health_probe_seconds, timeout=opts.probe_timeout
            )
            if settings.health_probe_seconds > 0 and clients:
                tasks = await stack.enter_async_context(anyio.create_task_group())
                stack.callback(tasks.cancel_scope.cancel)
                tasks.start_soon(prober.run)
            if settings.alertmanager_url:  # incidents to Alertmanager, kept in step every interval
                forwarder = _alert_forwarder(settings, db, http)
                delivery = await stack.enter_async_context(anyio.create_task_group())
                stack.callback(delivery.cancel_scope.cancel)
                delivery.start_soon(forwarder.run)
                holder["alerts"] = forwarder
            holder.update(clients=clients, store=db, hub=hub)
            app.state.api = ApiState(
                settings=settings,
                options=opts,
                store=db,
                http=http,
                configs=configs,
                clients=clients,
                runs=deployments if deployments is not None else PrefectRunTrigger(),
                hub=hub,
                metrics=metrics,
                openapi=document,
                prober=prober,
            )
            log.info(
                "aiops API ready: datasources %s, auth %s",
                ", ".join(f"{n} ({c.type})" for n, c in configs.items()) or "none",
                "on" if settings.api_token else "off",
            )
            yield
            holder.clear()

    routes: list[Any] = operation_routes(ops)
    routes.append(WebSocketRoute("/api/events/ws", websocket_endpoint, name="events_ws"))
    routes += page.asset_routes()
    token = settings.api_token.get_secret_value() if settings.api_token else None
    # the page's files load without the token, so the page can ask for it
    public = [op.path for op in ops if op.public] + page.asset_paths()
    middleware = [
        Middleware(MetricsMiddleware, metrics=metrics),
        Middleware(BodyLimitMiddleware, limit=opts.max_body_bytes),
        Middleware(
            AuthMiddleware,
            token=token,
            public_paths=public,
            failures=FailureLimit(
                limit=settings.api_auth_failure_limit,
                window=settings.api_auth_failure_window_seconds,
            ),
        ),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers=exception_handlers(),
        lifespan=lifespan,
    )
    app.state.operations = ops
    return app


def _alert_forwarder(settings: Settings, db: Any, http: httpx.AsyncClient) -> Any:
    from aiops.alertmanager import AlertForwarder, AlertmanagerClient
    from aiops.sources import retry_policy

    async def in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs))

    client = AlertmanagerClient(http, settings.alertmanager_url, retry=retry_policy(settings))
    log.info("incidents go to Alertmanager at %s", ", ".join(settings.alertmanager_url))
    return AlertForwarder(
        db,
        client,
        base_url=settings.resolved_public_url(),
        interval=settings.alertmanager_interval_seconds,
        db=in_thread,
    )


def _open_store(settings: Settings) -> Any:
    from aiops.store import Store

    url = settings.resolved_database_url()
    if url.startswith("sqlite:///"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Store.open(url)
