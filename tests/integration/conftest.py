from __future__ import annotations

import httpx
import pytest

from aiops.sources.http import RetryPolicy
from aiops.sources.prometheus import PrometheusClient

pytestmark = pytest.mark.prometheus


@pytest.fixture
async def http():
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def prom(prometheus, http) -> PrometheusClient:
    return PrometheusClient(
        http, prometheus.url, retry=RetryPolicy(initial_seconds=0.05, jitter_seconds=0.05)
    )
