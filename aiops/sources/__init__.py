"""Datasource clients built from settings: one shared request path, one client per datasource.

Every client built here reports its requests' outcomes to the process' health ledger
(:data:`aiops.sources.health.LEDGER`), which the service shares through the store."""

from __future__ import annotations

import functools
import ssl
from typing import TYPE_CHECKING

import httpx

from aiops.config import DatasourceConfig, Settings
from aiops.sources.health import LEDGER
from aiops.sources.http import RetryPolicy

if TYPE_CHECKING:
    from aiops.sources.loki import LokiClient
    from aiops.sources.prometheus import PrometheusClient

__all__ = [
    "SINGLE_ATTEMPT",
    "retry_policy",
    "http_timeout",
    "http_client",
    "tls_context",
    "build_prometheus",
    "build_loki",
    "build_client",
]

#: For clients inside Prefect tasks: one walk over the URLs (failover), no waits; the task's
#: retries (``AIOPS_RETRY_ATTEMPTS``, exponential backoff) are the retry policy there.
SINGLE_ATTEMPT = RetryPolicy(attempts=1)


def retry_policy(settings: Settings) -> RetryPolicy:
    """The client retry policy of the settings (``AIOPS_RETRY_*``)."""
    return RetryPolicy(
        attempts=settings.retry_attempts,
        initial_seconds=settings.retry_initial_seconds,
        max_seconds=settings.retry_max_seconds,
    )


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS context for every short-lived HTTP client: building one (loading the CA
    bundle) costs ~30 ms, more than a small query."""
    return httpx.create_ssl_context()


def http_client(settings: Settings, config: DatasourceConfig | None = None) -> httpx.AsyncClient:
    """A short-lived client for one task: the datasource's timeouts, the shared TLS context."""
    return httpx.AsyncClient(timeout=http_timeout(settings, config), verify=tls_context())


def http_timeout(settings: Settings, config: DatasourceConfig | None = None) -> httpx.Timeout:
    total = (
        config.timeout_seconds if config and config.timeout_seconds else None
    ) or settings.timeout_seconds
    return httpx.Timeout(total, connect=min(settings.connect_timeout_seconds, total))


def build_prometheus(
    config: DatasourceConfig,
    settings: Settings,
    client: httpx.AsyncClient,
    *,
    retry: RetryPolicy | None = None,
) -> PrometheusClient:
    """A :class:`~aiops.sources.prometheus.PrometheusClient` for one configured datasource;
    ``retry``: the policy (default: the settings')."""
    from aiops.sources.prometheus import PrometheusClient

    prometheus = PrometheusClient(
        client,
        list(config.urls),
        name=config.name,
        retry=retry or retry_policy(settings),
        cache_ttl=settings.cache_ttl_seconds,
        cache_max_entries=settings.cache_max_entries,
        timeout=http_timeout(settings, config),
        max_concurrency=settings.max_concurrency,
        headers=dict(config.headers),
    )
    prometheus.http.health_sink = LEDGER.observe
    return prometheus


def build_loki(
    config: DatasourceConfig,
    settings: Settings,
    client: httpx.AsyncClient,
    *,
    retry: RetryPolicy | None = None,
) -> LokiClient:
    """A :class:`~aiops.sources.loki.LokiClient` for one configured datasource; ``retry``: the
    policy (default: the settings')."""
    from aiops.sources.loki import LokiClient

    loki = LokiClient(
        client,
        list(config.urls),
        name=config.name,
        tenant=config.tenant,
        retry=retry or retry_policy(settings),
        cache_ttl=settings.cache_ttl_seconds,
        cache_max_entries=settings.cache_max_entries,
        timeout=http_timeout(settings, config),
        headers=dict(config.headers),
    )
    loki.http.health_sink = LEDGER.observe
    return loki


def build_client(
    config: DatasourceConfig,
    settings: Settings,
    client: httpx.AsyncClient,
    *,
    retry: RetryPolicy | None = None,
) -> PrometheusClient | LokiClient:
    """The client for a configured datasource, whatever its type."""
    if config.type == "prometheus":
        return build_prometheus(config, settings, client, retry=retry)
    return build_loki(config, settings, client, retry=retry)
