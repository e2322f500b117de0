"""Helpers of the API tests: a fake run trigger, settings, an in-process app and a real
uvicorn server for WebSocket tests."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any
from uuid import UUID, uuid4

import httpx
import uvicorn

from aiops.api import RunInfo
from aiops.config import Settings
from aiops.errors import NotFound
from aiops.store import Store
from tests.support.fakeloki import FakeLoki

TOKEN = "test-token-0123456789abcdef"
# read-only: schemathesis adds its default headers to a headers dict passed to it
AUTH = MappingProxyType({"Authorization": f"Bearer {TOKEN}"})
LOKI_URL = "http://loki.test"
#: Where the apps of tests marked ``no_prometheus`` look for Prometheus: nothing listens there
#: (the discard port), so a test that does query it fails at once instead of passing by luck.
NO_PROMETHEUS_URL = "http://127.0.0.1:9"


@dataclass
class FakeRuns:
    """A :class:`aiops.api.RunTrigger` that records what it was asked."""

    calls: list[tuple[str, dict[str, Any], str | None]] = field(default_factory=list)
    runs: dict[str, RunInfo] = field(default_factory=dict)
    fail_with: Exception | None = None

    async def trigger(
        self, deployment: str, parameters: Any, *, idempotency_key: str | None = None
    ) -> RunInfo:
        if self.fail_with is not None:
            raise self.fail_with
        self.calls.append((deployment, dict(parameters), idempotency_key))
        run_id = str(uuid4())
        info = RunInfo(
            id=run_id,
            state="SCHEDULED",
            state_name="Scheduled",
            flow=deployment.split("/")[0],
            deployment=deployment,
            url=f"http://prefect.test/runs/flow-run/{run_id}",
            parameters=dict(parameters),
        )
        self.runs[run_id] = info
        return info

    async def status(self, run_id: UUID) -> RunInfo:
        info = self.runs.get(str(run_id))
        if info is None:
            raise NotFound(f"flow run {run_id} not found")
        return info


def make_settings(
    prometheus_url: str, db_url: str, *, token: str | None = TOKEN, loki: bool = True, **extra: Any
) -> Settings:
    return Settings(
        prometheus_url=prometheus_url,
        loki_url=LOKI_URL if loki else "",
        database_url=db_url,
        api_token=token,
        retry_attempts=1,
        retry_initial_seconds=0,
        cache_ttl_seconds=300,
        config_file=None,
        health_probe_seconds=extra.pop("health_probe_seconds", 0),  # tests that want probes ask
        **extra,
    )


@contextlib.asynccontextmanager
async def running(app: Any) -> AsyncIterator[None]:
    """Run an app's lifespan around a block (what a server does)."""
    async with app.router.lifespan_context(app):
        yield


@dataclass
class Api:
    """An app in-process, its client (token sent by default) and what it was built with."""

    app: Any
    client: httpx.AsyncClient
    store: Store
    loki: FakeLoki
    runs: FakeRuns
    settings: Settings

    @property
    def state(self) -> Any:
        return self.app.state.api


# --------------------------------------------------------------------------- a real server


def listening_socket() -> socket.socket:
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say so (else +40 ms)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 in this event loop; yields ``host:port``.

    The socket listens before the server starts, so clients may connect at once: the kernel
    queues them until uvicorn (after the lifespan startup) accepts."""
    sock = listening_socket()
    host, port = sock.getsockname()
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="on",
        ws_ping_interval=None,
        timeout_graceful_shutdown=2,
        backlog=2048,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"{host}:{port}"
    finally:
        server.should_exit = True
        try:
            async with asyncio.timeout(15):
                await task
        finally:
            sock.close()


def event(detector: str = "det-a", ts: int = 0, **extra: Any) -> dict[str, Any]:
    """An anomaly event as a flow would insert it (``ts``: seconds after 2026-01-01)."""
    base = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    return {
        "type": extra.pop("type", "anomaly"),
        "detector_id": detector,
        "labels": extra.pop("labels", {"instance": "a"}),
        "ts": datetime.fromtimestamp(base + ts, UTC),
        "value": extra.pop("value", 1.0),
        "score": extra.pop("score", 2.0),
        **extra,
    }


def make_detector(store: Store, detector_id: str = "det-a", **extra: Any) -> Any:
    return store.create_detector({"id": detector_id, "kind": "zscore", **extra})
