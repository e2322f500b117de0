"""Flow tests run against a real Prefect server: ``prefect_test_harness``, once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prefect.events.clients import AssertingPassthroughEventsClient
from prefect.events.worker import EventsWorker
from prefect.testing.utilities import prefect_test_harness

from tasks._runtime import close_stores


@pytest.fixture(scope="session", autouse=True)
def prefect_server() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=120):
        yield
    close_stores()


@pytest.fixture
def aiops_env(tmp_path, monkeypatch, prometheus):
    """A fresh store and the real Prometheus for one test; log files may be read from the
    test's directory and the log fixtures."""
    from pathlib import Path

    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "logs"
    monkeypatch.setenv("AIOPS_DATABASE_URL", f"sqlite:///{tmp_path / 'aiops.db'}")
    monkeypatch.setenv("AIOPS_LOG_ROOTS", f"{tmp_path},{fixtures}")
    monkeypatch.setenv("AIOPS_PROMETHEUS_URL", prometheus.url)
    monkeypatch.setenv("AIOPS_RETRY_INITIAL_SECONDS", "0")
    return tmp_path


@pytest.fixture
def prefect_events(monkeypatch):
    """Call it to drain the events worker and get every Prefect event the test emitted
    (they reach the test server too)."""
    AssertingPassthroughEventsClient.reset()
    worker = EventsWorker.instance(AssertingPassthroughEventsClient)
    monkeypatch.setattr(EventsWorker, "instance", lambda *_: worker)

    def collected() -> list:
        # drain() only waits when called from sync code (from async code it returns an
        # awaitable): wait on the worker's own future, bounded, so async tests see every event
        worker._drain().result(timeout=60)
        return [e for client in AssertingPassthroughEventsClient.all for e in client.events]

    yield collected
    worker.drain()


@pytest.fixture
def fake_loki(aiops_env, monkeypatch):
    """The Loki stand-in served over real HTTP on 127.0.0.1, configured as AIOPS_LOKI_URL."""
    import threading

    import uvicorn

    from tests.support.fakeloki import FakeLoki
    from tests.support.prometheus import free_port

    fake = FakeLoki()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(fake.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    ready = threading.Event()
    for _ in range(200):  # up to 10 s for the socket to listen
        if server.started:
            break
        ready.wait(0.05)
    assert server.started, "fake Loki did not start"
    monkeypatch.setenv("AIOPS_LOKI_URL", f"http://127.0.0.1:{port}")
    yield fake
    server.should_exit = True
    thread.join(timeout=10)
