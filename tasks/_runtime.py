"""What tasks share inside one process: the settings, the store, transient-error policy."""

from __future__ import annotations

import threading
from typing import Any

from prefect.tasks import exponential_backoff

from aiops.config import Settings, load_settings
from aiops.errors import DatasourceTimeout, DatasourceUnavailable, StoreUnavailable
from aiops.store import Store

_lock = threading.Lock()
_stores: dict[str, Store] = {}

#: Failures worth another Prefect attempt. Bad queries, bad input and bugs fail at once.
TRANSIENT = (DatasourceUnavailable, DatasourceTimeout, StoreUnavailable)


def settings() -> Settings:
    config = load_settings()
    _share_health(config)
    return config


_health_url: str | None = None


def _share_health(config: Settings) -> None:
    """Every datasource client of this flow run reports to the process' health ledger; write
    what it learns to the store, so the API's failover, ``/api/datasources/health`` and
    ``aiops_datasource_up`` know that a flow just reached (or failed to reach) a URL."""
    global _health_url
    url = config.resolved_database_url()
    if url == _health_url:
        return
    with _lock:
        _health_url = url
    import os
    import socket

    from aiops.sources.health import LEDGER
    from aiops.store import record_datasource_health

    LEDGER.configure(
        lambda observations: record_datasource_health(store(config), observations),
        observer=f"flow@{socket.gethostname()}:{os.getpid()}",
    )


def store(config: Settings | None = None) -> Store:
    """One open store per database URL and process (flow runs are subprocesses)."""
    url = (config or settings()).resolved_database_url()
    with _lock:
        if url not in _stores:
            if url.startswith("sqlite:///"):
                from pathlib import Path

                Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            _stores[url] = Store.open(url)
        return _stores[url]


def close_stores() -> None:
    with _lock:
        for s in _stores.values():
            s.close()
        _stores.clear()


def transient_only(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only datasource outages and timeouts, and at most
    ``AIOPS_RETRY_ATTEMPTS`` attempts in all (a flow's ``with_options(retries=...)`` may
    lower that, never raise it)."""
    exc = getattr(state, "data", None)
    if not isinstance(exc, TRANSIENT):
        return False
    attempts_so_far = int(getattr(task_run, "run_count", 0) or 0)
    return attempts_so_far < load_settings().retry_attempts


#: ``retries`` of TRANSIENT_RETRIES: the most AIOPS_RETRY_ATTEMPTS allows; transient_only
#: stops at the configured attempts.
_MAX_RETRIES = (
    next(int(m.le) for m in Settings.model_fields["retry_attempts"].metadata if hasattr(m, "le"))
    - 1
)

#: The retry policy of every task that talks to a datasource: exponential backoff with
#: jitter, transient failures only, AIOPS_RETRY_ATTEMPTS attempts in all (whether or not the
#: flow also sets ``task.with_options(retries=...)``); one attempt walks every URL
#: (failover), so the clients inside tasks do not retry themselves (SINGLE_ATTEMPT).
TRANSIENT_RETRIES: dict[str, Any] = {
    "retries": _MAX_RETRIES,
    "retry_delay_seconds": exponential_backoff(backoff_factor=1),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": transient_only,
}


def prune_result_storage(max_age_seconds: float = 3600.0) -> int:
    """Delete cached task results older than ``max_age_seconds`` from Prefect's local result
    storage. Our caches expire within minutes, and Prefect never deletes the files, so a
    service that ticks every 30 s would otherwise grow the directory without bound.
    Returns how many files were removed."""
    import os
    import time

    from prefect.settings import get_current_settings

    root = get_current_settings().results.local_storage_path
    cutoff = time.time() - max_age_seconds
    removed = 0
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return 0
    for entry in entries:
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)
                removed += 1
        except FileNotFoundError:  # another process pruned it first
            continue
    return removed
