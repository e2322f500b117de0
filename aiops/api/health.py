"""Background datasource health: probe every configured URL at a set interval, share what
this process learned through the store, and take in what the flows learned.

Without it a datasource's health came only from the API process' own requests: Loki stayed
``unknown`` while a log job queried it every minute. Each round:

1. probes every URL of every datasource (its readiness endpoint, bounded by the probe timeout);
2. writes this process' latest word about each URL to the store (``datasource_health``);
3. reads every process' latest word back and lets the clients adopt what is newer than their
   own, so failover skips a URL a flow just found down, and ``/api/datasources/health`` and
   ``aiops_datasource_up`` reflect reality before the next query fails.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping
from typing import Any

import anyio

from aiops.sources.health import HealthObservation, observe_all

__all__ = ["HealthProber", "adopt_shared", "observer_name"]

log = logging.getLogger(__name__)


def observer_name(role: str) -> str:
    return f"{role}@{socket.gethostname()}:{os.getpid()}"


def adopt_shared(clients: Mapping[str, Any], observations: list[HealthObservation]) -> int:
    """Let each client take stored observations newer than its own; returns how many."""
    taken = 0
    for o in observations:
        client = clients.get(o.datasource)
        if client is None:
            continue
        taken += client.http.adopt(
            o.url,
            o.status,
            o.observed_at,
            latency_ms=o.latency_ms,
            last_error=o.last_error,
            last_error_at=o.last_error_at,
            last_ok_at=o.last_ok_at,
            consecutive_failures=o.consecutive_failures,
            observer=o.observer,
        )
    return taken


class HealthProber:
    """The probe loop of the API process (started and cancelled by the lifespan)."""

    def __init__(
        self,
        clients: Mapping[str, Any],
        store: Any,
        *,
        interval: float,
        timeout: float,
        observer: str | None = None,
    ) -> None:
        self.clients = clients
        self.store = store
        self.interval = interval
        self.timeout = timeout
        self.observer = observer or observer_name("api")
        self.rounds = 0
        self._round_done = anyio.Event()

    async def run(self) -> None:
        while True:
            await self.probe_once()
            await anyio.sleep(self.interval)  # the probe's pace

    async def probe_once(self) -> None:
        clients = list(self.clients.values())
        with anyio.move_on_after(self.timeout):
            await asyncio.gather(*(c.http.check_health() for c in clients), return_exceptions=True)
        mine = [o for c in clients for o in observe_all(c.http, self.observer)]
        try:
            await anyio.to_thread.run_sync(self._share, mine)
        except Exception as exc:  # a busy store must not stop the probes
            log.warning("datasource health: cannot share through the store: %s", exc)
        self.rounds += 1
        done, self._round_done = self._round_done, anyio.Event()
        done.set()

    def _share(self, mine: list[HealthObservation]) -> None:
        from aiops.store import read_datasource_health, record_datasource_health

        record_datasource_health(self.store, mine)
        adopt_shared(self.clients, read_datasource_health(self.store))

    async def wait_rounds(self, n: int, timeout: float = 10.0) -> None:
        """Wait until ``n`` rounds have completed (tests; bounded by ``timeout``)."""
        with anyio.fail_after(timeout):
            while self.rounds < n:
                await self._round_done.wait()
