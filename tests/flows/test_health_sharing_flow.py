"""A flow's datasource requests are shared as health observations in the store, for the API's
failover, /api/datasources/health and aiops_datasource_up (issue 15, item 3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aiops.store import read_datasource_health
from flows.logs import analyze_logs
from tasks._runtime import store

pytestmark = pytest.mark.prefect

T0 = datetime(2024, 5, 6, 7, 0, tzinfo=UTC)


async def test_a_log_flow_reaching_loki_records_it_up_in_the_store(fake_loki):
    fake_loki.add({"app": "health-share"}, int(T0.timestamp()) * 10**9, "GET / 200")
    result = await analyze_logs(
        selector='{app="health-share"}', start=T0, end=T0 + timedelta(minutes=5)
    )
    assert result["report"]["total_logs"] == 1
    (loki,) = [o for o in read_datasource_health(store()) if o.datasource == "loki"]
    assert loki.status == "up" and loki.observer.startswith("flow@") and loki.last_ok_at is not None
