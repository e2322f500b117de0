"""Incidents and waits shared by the incident tests and the triage benchmark."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from aiops.store import series_key

T = TypeVar("T")


def inject_incident(
    db: Any,
    detector_id: str,
    labels: dict[str, str],
    opened: datetime,
    *,
    score: float = 5.0,
    value: float = 2.5,
    expected: float = 0.3,
) -> list[Any]:
    """An incident of ``detector_id`` opened at ``opened`` on the series ``labels``, committed
    as the detection flow commits one; returns the events inserted."""
    return db.commit_detection(
        detector_id,
        incidents=[
            {
                "series_key": series_key(labels),
                "labels": labels,
                "opened_at": opened,
                "opened": True,
                "last_anomalous_at": opened,
                "resolved_at": None,
                "points": 1,
                "peak": {"ts": opened, "score": score, "value": value, "expected": expected},
            }
        ],
    )


async def until(probe: Callable[[], Awaitable[T]], *, timeout: float) -> T:
    """Await ``probe()`` until it returns something truthy; TimeoutError after ``timeout`` s.

    For state only another server holds (a Prefect trigger's flow run, a Prometheus rule's
    alert): there is nothing to wait on, so it is polled, bounded."""
    async with asyncio.timeout(timeout):
        while not (value := await probe()):
            await asyncio.sleep(0.2)
    return value
