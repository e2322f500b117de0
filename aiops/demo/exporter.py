"""The demo workload process: a Prometheus exporter and a log writer
(``python -m aiops.demo serve``).

The exporter serves the workload's metrics at ``http://<host>:<port>/metrics`` (Prometheus
text format, ``prometheus_client`` on its own registry), computed at scrape time from the
workload's deterministic functions. The log writer appends the workload's log lines to
``log_file`` every second and keeps only the last ``log_keep`` seconds in it (rewritten
atomically), so a file log job reads a recent window rather than an ever-growing file.
Both stop on SIGTERM or SIGINT.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from aiops.demo.logs import lines_between
from aiops.demo.workload import BUCKETS, QUEUES, SERVICES, Workload, le_label

__all__ = ["WorkloadCollector", "LogWriter", "run_workload"]

log = logging.getLogger(__name__)


class WorkloadCollector(Collector):
    """The workload's metrics at the time of each scrape."""

    def __init__(self, workload: Workload, clock: Callable[[], float] = time.time) -> None:
        self.workload = workload
        self.clock = clock
        self.lock = threading.Lock()

    def collect(self) -> Iterable[Metric]:
        with self.lock:
            now = self.clock()
            values = self.workload.series_at(now)
        counters, queues = values["counters"], values["queues"]
        requests = CounterMetricFamily(
            "demo_http_requests", "Requests served by the demo services", labels=["service", "code"]
        )
        latency = HistogramMetricFamily(
            "demo_http_request_duration_seconds",
            "Request latency of the demo services",
            labels=["service"],
        )
        for s in SERVICES:
            for code in ("200", "500"):
                requests.add_metric([s, code], counters[f"{s}|{code}"])
            buckets = [(le_label(b), counters[f"{s}|le={b}"]) for b in BUCKETS]
            buckets.append(("+Inf", counters[f"{s}|le=+Inf"]))
            latency.add_metric([s], buckets, sum_value=counters[f"{s}|sum"])
        depth = GaugeMetricFamily(
            "demo_queue_depth", "Messages waiting in the demo queues", labels=["queue"]
        )
        for q in QUEUES:
            depth.add_metric([q], queues[q])
        active = GaugeMetricFamily(
            "demo_incident_active",
            "1 while an injected incident is under way (the demo's ground truth)",
            labels=["kind", "target"],
        )
        inc = self.workload.incident_at(now)
        if inc is not None:
            active.add_metric([inc.kind, inc.target], 1.0)
        yield from (requests, latency, depth, active)


class LogWriter:
    """Appends the workload's log lines to ``path``, keeping the last ``keep`` seconds."""

    def __init__(
        self, workload: Workload, path: Path, keep: float = 180.0, now: float | None = None
    ) -> None:
        self.workload = workload
        self.path = path
        self.keep = keep
        self.lines: deque[tuple[float, str]] = deque()
        self.last = self.trimmed_at = time.time() if now is None else now
        path.parent.mkdir(parents=True, exist_ok=True)

    def tick(self, now: float | None = None) -> int:
        """Write the lines since the previous tick; trim the file every 10 s. Returns lines
        written."""
        now = time.time() if now is None else now
        if now <= self.last:
            return 0
        new = lines_between(self.workload, self.last, now)
        self.last = now
        for line in new:
            self.lines.append((now, line))
        if new:
            with self.path.open("a", encoding="utf-8") as out:
                out.write("\n".join(new) + "\n")
        if now - self.trimmed_at >= 10:
            self.trim(now)
        return len(new)

    def trim(self, now: float) -> None:
        cutoff = now - self.keep
        dropped = 0
        while self.lines and self.lines[0][0] < cutoff:
            self.lines.popleft()
            dropped += 1
        self.trimmed_at = now
        if dropped or not self.path.exists():
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text("".join(line + "\n" for _, line in self.lines), encoding="utf-8")
            os.replace(tmp, self.path)


def run_workload(
    workload: Workload,
    *,
    host: str,
    port: int,
    log_file: Path | None,
    log_keep: float = 600.0,
    on_tick: Callable[[float], Any] | None = None,
) -> int:
    """Serve the exporter and write logs until SIGTERM/SIGINT. Returns an exit code."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    registry = CollectorRegistry(auto_describe=False)
    collector = WorkloadCollector(workload)
    registry.register(collector)
    server, thread = start_http_server(port, addr=host, registry=registry)
    log.info("demo exporter at http://%s:%d/metrics", host, port)
    writer = LogWriter(workload, log_file, log_keep) if log_file else None
    announced: int | None = None
    try:
        while not stop.is_set():
            now = time.time()
            with collector.lock:
                inc = workload.incident_at(now)
                if writer is not None:
                    writer.tick(now)
            if inc is not None and inc.number != announced:
                announced = inc.number
                log.info(
                    "demo incident %d: %s on %s until %s",
                    inc.number,
                    inc.kind,
                    inc.target,
                    time.strftime("%H:%M:%S", time.gmtime(inc.end)),
                )
            if on_tick is not None:
                on_tick(now)
            stop.wait(1.0)  # the writer's pace: one batch of lines per second
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    return 0
