"""Run the API with uvicorn: ``run_api(settings, host=None, port=None)``.

Refuses to listen on a non-loopback address without ``AIOPS_API_TOKEN``: an open API on the
network would let anyone trigger runs and change detectors.
"""

from __future__ import annotations

import logging
from typing import Any

from aiops.api.app import ApiOptions, create_app
from aiops.api.auth import is_loopback
from aiops.config import Settings
from aiops.errors import ConfigError

__all__ = ["run_api", "build_server", "check_bind"]

log = logging.getLogger("aiops.api")


def check_bind(settings: Settings, host: str) -> None:
    """Raise :class:`ConfigError` for a non-loopback ``host`` without a token."""
    if settings.api_token is None and not is_loopback(host):
        raise ConfigError(
            f"refusing to listen on {host} without a token: set AIOPS_API_TOKEN (16+ characters) "
            "or listen on 127.0.0.1",
            setting="AIOPS_API_TOKEN",
        )


def build_server(
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
    *,
    options: ApiOptions | None = None,
    **app_kwargs: Any,
):
    """A configured ``uvicorn.Server`` (not started): for ``aiops up`` and tests."""
    import uvicorn

    host = host or settings.api_host
    port = settings.api_port if port is None else port
    check_bind(settings, host)
    app = create_app(settings, options=options, **app_kwargs)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # keep aiops' logging setup
        access_log=False,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        # Events are small JSON; compressing each frame for each client costs more CPU than
        # it saves on the wire, and fan-out to many clients is CPU-bound.
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=5,
        lifespan="on",
    )
    return uvicorn.Server(config)


def run_api(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Serve the API until interrupted (blocking). Raises ConfigError for an unsafe bind."""
    server = build_server(settings, host, port)
    log.info("aiops API listening on http://%s:%d", server.config.host, server.config.port)
    server.run()
