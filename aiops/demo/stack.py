"""What ``aiops up`` needs to run the demo: its state, its history, its configuration.

The demo runs when no Prometheus is configured (:func:`prometheus_configured`). Everything
lives under ``$AIOPS_DATA_DIR/demo``:

* ``workload.json``: the workload's seed, counter origin and incident schedule, and up to
  when its history is in Prometheus (``loaded_until``, by ``aiops up``; ``served_until``,
  every 30 s by the exporter). The same seed and origin on every start, so counters
  continue across restarts.
* ``prometheus/``: the local Prometheus' config, log and TSDB. On the first start the last
  ``history`` of the workload is loaded into it with promtool; on later starts only the gap
  since the exporter last served (bounded by ``history``), so detectors always have history
  to learn from and incidents in the recent past are found at the first tick.
* ``config.yaml``: the effective config file, rendered from the shipped demo config
  (``deployments/demo/config.yaml``: the ``demo`` datasource and the demo log job) merged
  with the user's own settings.

The demo log file the workload writes and the demo log job reads is
``$AIOPS_DATA_DIR/logs/demo-app.log``: in the default ``AIOPS_LOG_ROOTS``, so it can be
analysed on demand too (API, CLI) while the demo folder, which holds the rendered config,
stays unreadable to runs.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import string
import subprocess
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from aiops.config import Settings, read_config_file
from aiops.demo.workload import GRID, Workload
from aiops.errors import AiopsError, ConfigError
from aiops import localprom

__all__ = [
    "DEMO_DATASOURCE",
    "DemoState",
    "load_history",
    "port_free",
    "prometheus_configured",
    "render_config",
    "start_demo",
]

log = logging.getLogger(__name__)

DEMO_DATASOURCE = "demo"
#: History older than this is loaded at one sample a minute, newer at the scrape interval.
RECENT_SECONDS = 6 * 3600
STATE_FILE = "workload.json"


def prometheus_configured(settings: Settings) -> bool:
    """True when the user named a Prometheus: ``AIOPS_PROMETHEUS_URL`` or ``prometheus_url`` in
    the config file, or a named datasource of type prometheus. The embedded default URL does
    not count."""
    if "prometheus_url" in settings.model_fields_set:
        return True
    return any(
        isinstance(raw, dict) and raw.get("type") == "prometheus"
        for raw in settings.datasources.values()
    )


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on ``host:port`` now (connections of a previous run
    lingering in TIME_WAIT do not count: servers bind with SO_REUSEADDR, and so do we)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


@dataclass
class DemoState:
    """The persistent identity of one data dir's demo workload (``workload.json``)."""

    seed: int
    origin: float
    incident_every: float
    incident_duration: float
    loaded_until: float | None = None
    served_until: float | None = None

    def workload(self) -> Workload:
        return Workload(
            seed=self.seed,
            origin=self.origin,
            incident_every=self.incident_every,
            incident_duration=self.incident_duration,
        )

    @classmethod
    def load(cls, path: Path) -> DemoState | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            log.warning("demo state %s unreadable (%s): starting a new one", path, exc)
            return None

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        seed: int,
        incident_every: float,
        incident_duration: float,
        history_seconds: float,
        prometheus_data: Path,
        now: float | None = None,
    ) -> DemoState:
        """The data dir's state, created (or re-based) as needed. A new workload's counters
        start at midnight UTC before its history. Changing the seed or the incident schedule
        changes past values, so it starts a new origin (Prometheus sees one counter reset)."""
        now = time.time() if now is None else now
        state = cls.load(path)
        if state is not None and (state.seed, state.incident_every, state.incident_duration) != (
            seed,
            incident_every,
            incident_duration,
        ):
            log.info("demo workload parameters changed: counters restart from now")
            state = cls(seed, math.floor(now / GRID) * GRID, incident_every, incident_duration)
        if state is None:
            origin = math.floor((now - history_seconds) / 86400) * 86400
            state = cls(seed, float(origin), incident_every, incident_duration)
        if not _has_blocks_or_wal(prometheus_data):
            state.loaded_until = state.served_until = None
        state.workload()  # validates the schedule
        path.parent.mkdir(parents=True, exist_ok=True)
        state.save(path)
        return state


def _has_blocks_or_wal(data: Path) -> bool:
    try:
        return any(p.name != "lock" for p in data.iterdir())
    except FileNotFoundError:
        return False


def load_history(
    state: DemoState,
    state_file: Path,
    prometheus_data: Path,
    *,
    labels: dict[str, str],
    history_seconds: float,
    step: float = 15.0,
    now: float | None = None,
) -> int:
    """Load the workload's values since ``loaded_until``/``served_until`` (at most
    ``history_seconds`` back) into ``prometheus_data`` with promtool, while Prometheus is
    not running. Returns the samples loaded (0 when the data is already there)."""
    now = math.floor((time.time() if now is None else now) / step) * step
    start = now - history_seconds
    known = max(
        (t for t in (state.loaded_until, state.served_until) if t is not None), default=None
    )
    if known is not None:
        start = max(start, known)
    start = max(start, state.origin)
    if now - start < 60:
        return 0
    workload = state.workload()
    pieces = []
    recent = max(start, now - RECENT_SECONDS)
    if recent - start >= 60:
        pieces.append((start, recent - 60, 60.0))
    pieces.append((recent, now, step))
    total = 0
    began = time.monotonic()
    prometheus_data.mkdir(parents=True, exist_ok=True)
    for lo, hi, piece_step in pieces:  # promtool, a day per file (localprom.load_history)
        total += localprom.load_history(
            workload.history(lo, hi, piece_step, labels),
            prometheus_data,
            prometheus_data.parent / "history",
        )
    state.loaded_until = now
    state.save(state_file)
    log.info(
        "demo history loaded: %d samples from %s to %s in %.1fs",
        total,
        time.strftime("%Y-%m-%d %H:%M", time.gmtime(start)),
        time.strftime("%H:%M", time.gmtime(now)),
        time.monotonic() - began,
    )
    return total


def render_config(
    template: Path, out: Path, settings: Settings, *, prometheus_url: str, demo_dir: Path
) -> Path:
    """Write the effective config file of a demo run to ``out``: the user's config file (if
    any), with the user's named datasources and log jobs (from the file or the environment)
    and the demo's added, and ``prometheus_url`` pointing at the local Prometheus when the
    user named none. Returns ``out``."""
    try:
        text = string.Template(template.read_text(encoding="utf-8")).substitute(
            prometheus_url=prometheus_url,
            demo_dir=str(demo_dir.resolve()),
            data_dir=str(settings.data_dir.resolve()),
        )
    except (KeyError, ValueError) as exc:
        raise ConfigError(
            f"demo config {template}: bad placeholder {exc}", setting=str(template)
        ) from None
    demo = yaml.safe_load(text) or {}
    user_file = os.environ.get("AIOPS_CONFIG_FILE")
    data: dict[str, Any] = read_config_file(Path(user_file)) if user_file else {}
    datasources = dict(settings.datasources)
    for name, raw in (demo.get("datasources") or {}).items():
        if name in datasources:
            raise ConfigError(
                f"the demo needs the datasource name {name!r}, which your configuration already "
                "uses",
                setting="datasources",
            )
        datasources[name] = raw
    jobs = [job.model_dump(mode="json", exclude_none=True) for job in settings.log_jobs]
    taken = {job["name"] for job in jobs}
    for job in demo.get("log_jobs") or []:
        if job["name"] in taken:
            raise ConfigError(
                f"the demo needs the log job name {job['name']!r}, which your configuration "
                "already uses",
                setting="log_jobs",
            )
        jobs.append(job)
    data.update(datasources=datasources, log_jobs=jobs)
    if not prometheus_configured(settings):
        data["prometheus_url"] = [prometheus_url]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(
        "# Written by `aiops up` (demo mode) from the shipped demo config and yours; do not edit.\n"
        + yaml.safe_dump(data, sort_keys=False),
        encoding="utf-8",
    )
    os.replace(tmp, out)
    return out


@dataclass
class DemoOptions:
    """The knobs of ``aiops up``'s demo (its command-line flags)."""

    config_dir: Path  # deployments/demo: config.yaml and detectors.yaml
    prometheus_port: int | None = None
    exporter_port: int | None = None
    history_seconds: float = 4 * 86400
    incident_every: float = 900
    incident_duration: float = 240
    seed: int = 7
    scrape_interval: str = "15s"
    log_keep: float = 600.0  # minutes before an incident are the triage's baseline


DEFAULT_PROMETHEUS_PORT = 9190
DEFAULT_EXPORTER_PORT = 9191


def _pick_port(requested: int | None, default: int, what: str) -> int:
    from aiops.localprom import free_port

    if requested:
        if not port_free(requested):
            raise ConfigError(
                f"port {requested} for the {what} is taken",
                setting=f"--{what.replace(' ', '-')}-port",
            )
        return requested
    if port_free(default):
        return default
    port = free_port()
    log.warning("port %d for the %s is taken: using %d", default, what, port)
    return port


def start_demo(
    settings: Settings,
    supervisor: Any,
    env: dict[str, str],
    options: DemoOptions,
    *,
    python: str,
    api_target: str | None,
) -> dict[str, str]:
    """Start the demo: the workload process (exporter and log writer) and a local
    Prometheus scraping it and ``api_target`` (the service's own ``/metrics``), with the
    workload's history loaded first. Updates ``env`` for the other children (the rendered
    config file). Returns what to print: name -> where."""
    import httpx

    from aiops.localprom import binaries, start_prometheus
    from aiops.timeutil import parse_seconds

    binaries()  # a clear message when prometheus/promtool are missing
    demo_dir = (settings.data_dir / DEMO_DATASOURCE).resolve()
    prom_dir = demo_dir / "prometheus"
    prom_data = prom_dir / "data"
    state_file = demo_dir / STATE_FILE
    exporter_port = _pick_port(options.exporter_port, DEFAULT_EXPORTER_PORT, "exporter")
    prometheus_port = _pick_port(options.prometheus_port, DEFAULT_PROMETHEUS_PORT, "prometheus")
    exporter = f"127.0.0.1:{exporter_port}"
    prometheus_url = f"http://127.0.0.1:{prometheus_port}"

    state = DemoState.open(
        state_file,
        seed=options.seed,
        incident_every=options.incident_every,
        incident_duration=options.incident_duration,
        history_seconds=options.history_seconds,
        prometheus_data=prom_data,
    )
    load_history(
        state,
        state_file,
        prom_data,
        labels={"job": "demo", "instance": exporter},
        history_seconds=options.history_seconds,
        step=parse_seconds(options.scrape_interval, field="scrape_interval"),
    )
    log_file = settings.data_dir.resolve() / "logs" / "demo-app.log"
    proc = supervisor.start(
        "demo workload",
        [
            python,
            "-m",
            "aiops.demo",
            "serve",
            "--state",
            str(state_file),
            "--port",
            str(exporter_port),
            "--log-file",
            str(log_file),
            "--log-keep",
            str(options.log_keep),
        ],
        env,
    )
    _wait_ok(httpx, f"http://{exporter}/metrics", proc, 60, "the demo workload exporter")
    targets = {"demo": [exporter]}
    if api_target:
        targets["aiops"] = [api_target]
    rules = Path(__file__).resolve().parents[2] / "deployments" / "prometheus" / "aiops-rules.yml"
    prom = start_prometheus(
        prom_dir,
        port=prometheus_port,
        data_dir=prom_data,
        scrape_targets=targets,
        scrape_interval=options.scrape_interval,
        rule_files=[rules] if api_target and rules.exists() else (),
    )
    supervisor.adopt("prometheus", prom.process, restart=partial(restart_prometheus, prom))

    config = render_config(
        options.config_dir / "config.yaml",
        demo_dir / "config.yaml",
        settings,
        prometheus_url=prometheus_url,
        demo_dir=demo_dir,
    )
    env["AIOPS_CONFIG_FILE"] = str(config)
    for merged in ("AIOPS_DATASOURCES", "AIOPS_LOG_JOBS"):  # now in the rendered file
        env.pop(merged, None)
    return {
        "Prometheus": prometheus_url,
        "demo exporter": f"http://{exporter}/metrics",
        "demo log file": str(log_file),
        "demo config": str(config),
    }


def restart_prometheus(prom: Any) -> subprocess.Popen:
    """Start the demo Prometheus again with the command line it had (same port, data, config),
    its output appended to its log; not waiting for it (the supervisor's loop must go on)."""
    with (prom.workdir / "prometheus.log").open("a") as out:
        return subprocess.Popen(
            prom.process.args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )


def _wait_ok(httpx: Any, url: str, proc: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        try:
            code = proc.wait(timeout=0.2)  # the pause between polls; notices an early exit
        except subprocess.TimeoutExpired:
            continue
        raise AiopsError(f"{what} exited with code {code} before it was ready")
    raise AiopsError(f"{what} was not ready at {url} after {timeout:.0f}s")
