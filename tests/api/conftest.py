"""Fixtures of the API tests: an app over the real Prometheus, a fresh SQLite store, a fake
Loki (in-process) and a fake run trigger."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from aiops.api import ApiOptions, create_app
from aiops.store import Store
from tests.api.support import (
    AUTH,
    LOKI_URL,
    NO_PROMETHEUS_URL,
    TOKEN,
    Api,
    FakeRuns,
    make_settings,
    running,
)
from tests.support.fakeloki import FakeLoki


@pytest.fixture
def store(tmp_path) -> Any:
    s = Store.open(f"sqlite:///{tmp_path / 'aiops.db'}")
    yield s
    s.close()


@pytest.fixture
def fake_loki() -> FakeLoki:
    return FakeLoki()


@pytest.fixture
def make_api(
    request, tmp_path, store, fake_loki
) -> Callable[..., contextlib.AbstractAsyncContextManager[Api]]:
    """``async with make_api(**settings_or_options) as api``: a started app and its client.

    The real Prometheus (a session fixture) is started for the first test that needs it; a
    test or module marked ``pytest.mark.no_prometheus`` never queries it and never starts it."""

    def default_prometheus_url() -> str:
        if request.node.get_closest_marker("no_prometheus") is not None:
            return NO_PROMETHEUS_URL
        return request.getfixturevalue("prometheus").url

    @contextlib.asynccontextmanager
    async def factory(
        *,
        options: ApiOptions | None = None,
        runs: FakeRuns | None = None,
        loki: bool = True,
        token: str | None = TOKEN,
        store_override: Any = None,
        **extra: Any,
    ) -> AsyncIterator[Api]:
        prometheus_url = extra.pop("prometheus_url", None) or default_prometheus_url()
        settings = make_settings(
            prometheus_url, f"sqlite:///{tmp_path / 'aiops.db'}", token=token, loki=loki, **extra
        )
        runs = runs or FakeRuns()
        mounts = {LOKI_URL: httpx.ASGITransport(app=fake_loki.app)}
        async with httpx.AsyncClient(mounts=mounts, timeout=30) as http:
            app = create_app(
                settings,
                store=store_override if store_override is not None else store,
                http_client=http,
                deployments=runs,
                options=options or ApiOptions(tail_interval=0.05),
            )
            async with running(app):
                transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://api.test", headers=AUTH if token else {}
                ) as client:
                    yield Api(app, client, store, fake_loki, runs, settings)

    return factory


@pytest.fixture
async def api(make_api) -> AsyncIterator[Api]:
    async with make_api() as a:
        yield a


@pytest.fixture(scope="module")
def prefect_server():
    """A real temporary Prefect server (``prefect_test_harness``), for the runs tests only.

    Not autouse, and module-scoped: only tests/api/test_runs_prefect.py uses it, so it starts
    once per session and is stopped before tests/flows starts its own harness (one Prefect
    server at a time on a 2-core machine)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
