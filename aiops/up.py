"""What ``aiops up`` runs: the store prepared, a local Prefect server (unless
``PREFECT_API_URL`` names one), the demo when asked, the deployments served and the API, all
children of one :class:`~aiops.supervisor.Supervisor`; SIGTERM, SIGHUP or Ctrl-C stops it all.

The command line only parses its flags and prints where things are (``on_ready``); the
decisions (which children, in which order, when one is ready, what a left-over demo detector
becomes) live here. Starts processes; no Prefect or Starlette import.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiops.errors import AiopsError
from aiops.promql import detector_sampling_notes
from aiops.supervisor import Supervisor, prefect_home

if TYPE_CHECKING:
    from aiops.config import Settings
    from aiops.demo.stack import DemoOptions
    from aiops.store import Store

__all__ = ["UpPlan", "pause_demo_detectors", "prepare_store", "run_up", "wait_http"]

log = logging.getLogger(__name__)

_PREFECT_READY_SECONDS = 180  # a first boot migrates the Prefect database
_API_READY_SECONDS = 120
_WATCH_SECONDS = 1.0


@dataclass(frozen=True)
class UpPlan:
    """What to bring up: the API or not, and the demo's options (None: no demo)."""

    api: bool = True
    demo: DemoOptions | None = None


def prepare_store(settings: Settings) -> Store:
    """Open (and migrate) the store, and upsert the detectors file when one is configured."""
    from aiops.store import Store, apply_detectors_file

    url = settings.resolved_database_url()
    if url.startswith("sqlite:///"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store.open(url)
    if settings.detectors_file:
        result = apply_detectors_file(
            store, settings.detectors_file, datasources=settings.datasource_configs()
        )
        log.info(
            "detectors file %s: %s", settings.detectors_file, {k: len(v) for k, v in result.items()}
        )
    configs = settings.datasource_configs()
    for det in store.list_detectors():
        for note in detector_sampling_notes(det, configs):
            log.warning("detector %s: %s", det.id, note)
    return store


def pause_demo_detectors(store: Store, settings: Settings) -> list[str]:
    """Pause the detectors a demo run left behind when the demo datasource is gone (they
    cannot run now); ``aiops up --demo`` resumes them. Returns their ids."""
    from aiops.demo.stack import DEMO_DATASOURCE

    if DEMO_DATASOURCE in settings.datasource_configs():
        return []
    paused = []
    for det in store.list_detectors():
        if det.status != "paused" and any(d.name == DEMO_DATASOURCE for d in det.datasources):
            store.update_detector(det.id, status="paused")
            paused.append(det.id)
    return paused


def prefect_server_command(python: str, port: int) -> list[str]:
    """The local Prefect server on 127.0.0.1:``port``, as ``aiops up`` runs it."""
    return [python, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]


def wait_http(url: str, proc: subprocess.Popen, timeout: float, what: str) -> None:
    """Wait until ``url`` answers 200; AiopsError when ``proc`` exits first or time runs out."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AiopsError(f"{what} exited with code {proc.returncode} before it was ready")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AiopsError(f"{what} was not ready at {url} after {timeout:.0f}s")


def run_up(
    settings: Settings,
    plan: UpPlan,
    *,
    on_ready: Callable[[str, str | None, dict[str, str]], None],
    notice: Callable[[str], None],
    environ: Mapping[str, str] | None = None,
    python: str = sys.executable,
) -> int:
    """Bring everything up and watch it until interrupted (returns 0) or until a child keeps
    failing (AiopsError). ``on_ready(prefect_api, api_url or None, where)`` is called once all
    is up, ``where`` naming the demo's parts; ``notice`` gets one-line notes for people."""
    from aiops.store import apply_detectors_file

    env = dict(os.environ if environ is None else environ)
    # Core modules log through the standard `aiops.*` loggers; ship them to the Prefect UI too.
    env.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "aiops")
    env.setdefault(
        "PREFECT_SERVER_ANALYTICS_ENABLED", "false"
    )  # no phoning home from a local server
    sup = Supervisor()

    def interrupt(*_: Any) -> None:
        raise KeyboardInterrupt  # SIGTERM and SIGHUP stop like Ctrl-C

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)
    api = f"http://{settings.api_host}:{settings.api_port}"
    where: dict[str, str] = {}
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        with prepare_store(settings) as store:
            if plan.demo is not None:
                apply_detectors_file(
                    store,
                    plan.demo.config_dir / "detectors.yaml",
                    datasources=settings.datasource_configs(),
                )
            else:
                for det_id in pause_demo_detectors(store, settings):
                    notice(f"paused demo detector {det_id} (`aiops up --demo` resumes it)")
        prefect_server = None
        if not env.get("PREFECT_API_URL"):
            env["PREFECT_HOME"] = prefect_home(settings)
            port = settings.prefect_port
            prefect_server = sup.start(  # booting takes a while: the demo starts meanwhile
                "prefect server",
                prefect_server_command(python, port),
                env,
            )
        if plan.demo is not None:
            from aiops.demo.stack import start_demo

            api_target = f"{settings.api_host}:{settings.api_port}" if plan.api else None
            where.update(
                start_demo(settings, sup, env, plan.demo, python=python, api_target=api_target)
            )
        if prefect_server is not None:
            port = settings.prefect_port
            wait_http(
                f"http://127.0.0.1:{port}/api/health",
                prefect_server,
                _PREFECT_READY_SECONDS,
                "the Prefect server",
            )
            env["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
        sup.start("deployments", [python, "-m", "deployments.serve"], env)
        if plan.api:
            api_proc = sup.start("api", [python, "-m", "aiops.cli", "api"], env)
            wait_http(f"{api}/healthz", api_proc, _API_READY_SECONDS, "the API")
        on_ready(env["PREFECT_API_URL"], api if plan.api else None, where)
        while True:
            sup.watch()  # restarts a child that exited; raises when one keeps failing
            time.sleep(_WATCH_SECONDS)  # the watch's pace
    except KeyboardInterrupt:
        return 0
    finally:
        sup.stop()
