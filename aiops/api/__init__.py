"""The HTTP and WebSocket API (Starlette): datasources, detectors, anomalies, runs, events.

::

    from aiops.api import create_app, run_api
    app = create_app(load_settings())          # an ASGI app; the lifespan owns its resources
    run_api(load_settings(), host="127.0.0.1", port=8000)   # serve it with uvicorn

This package may import Starlette and Prefect (it triggers deployments by name); it never
imports ``flows/``. See docs/api.md for every endpoint.
"""

from aiops.api.app import ApiOptions, ApiState, create_app, operations
from aiops.api.runs import PrefectRunTrigger, RunInfo, RunTrigger
from aiops.api.server import build_server, run_api

__all__ = [
    "create_app",
    "run_api",
    "build_server",
    "operations",
    "ApiOptions",
    "ApiState",
    "RunTrigger",
    "RunInfo",
    "PrefectRunTrigger",
]
