"""A real Prometheus for tests and benchmarks: Debian's ``prometheus`` on 127.0.0.1.

History is written as OpenMetrics text, turned into TSDB blocks by
``promtool tsdb create-blocks-from openmetrics`` and loaded by a fresh server on a free port.
Every value is computed from the sample index, so tests can assert exact numbers.
"""

from __future__ import annotations

import math
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiops import localprom
from aiops.localprom import Family, free_port  # noqa: F401  (tests import free_port from here)

STEP = 15  # seconds between samples
HOURS = 6

# Label values a builder must escape; loaded as series so matchers can be checked exactly.
HOSTILE_VALUES = [
    "plain",
    'a"b',
    "back\\slash",
    "trailing\\",
    '"}) or vector(1) #',
    '{evil="x"}',
    "new\nline",
    "tab\tand\rcr",
    "unicode ünïcödé ✓ 日本",
    "$1 ${name} $$",
    "'single' `back`",
    'a\\"b',
    "=~!~",
    "",  # empty: matches series *without* the label; loaded series always carry it, so skip
]
LOADED_HOSTILE = [v for v in HOSTILE_VALUES if v]


@dataclass
class SeriesSpec:
    metric: str
    labels: dict[str, str]
    value: Callable[[int], float]  # sample index -> value
    type: str = "gauge"


@dataclass
class History:
    """What was loaded: the series and the exact timestamps of samples."""

    start: int  # first sample, Unix seconds (aligned to STEP)
    end: int  # last sample
    step: int
    series: list[SeriesSpec] = field(default_factory=list)

    @property
    def points(self) -> int:
        return (self.end - self.start) // self.step + 1

    def timestamp(self, i: int) -> int:
        return self.start + i * self.step

    def index(self, ts: float) -> int:
        return int((ts - self.start) // self.step)


def default_series() -> list[SeriesSpec]:
    """Series with values derived from the sample index i (one sample every STEP seconds)."""
    out = [
        # A counter rising by 30 per sample: rate() is exactly 2/s.
        SeriesSpec(
            "aiops_test_requests_total",
            {"instance": "a", "job": "test", "status": "200"},
            lambda i: 30.0 * i,
            "counter",
        ),
        SeriesSpec(
            "aiops_test_requests_total",
            {"instance": "b", "job": "test", "status": "200"},
            lambda i: 15.0 * i,
            "counter",
        ),
        SeriesSpec(
            "aiops_test_requests_total",
            {"instance": "a", "job": "test", "status": "500"},
            lambda i: 3.0 * i,
            "counter",
        ),
        # Gauges equal to their index (and twice it): exact values at known times.
        SeriesSpec("aiops_test_gauge", {"instance": "a"}, lambda i: float(i)),
        SeriesSpec("aiops_test_gauge", {"instance": "b"}, lambda i: 2.0 * i),
        # A smooth daily-ish wave with one spike: a known anomaly for detectors.
        SeriesSpec("aiops_test_latency_seconds", {"instance": "a", "job": "test"}, _latency_a),
        SeriesSpec("aiops_test_latency_seconds", {"instance": "b", "job": "test"}, _latency_b),
    ]
    # Flat with deterministic jitter; instance "a" jumps by +5 at SPIKE_INDEX and nowhere else.
    out += [
        SeriesSpec(
            "aiops_test_anomaly",
            {"instance": "a"},
            lambda i: _flat(i) + (5.0 if i == SPIKE_INDEX else 0.0),
        ),
        SeriesSpec("aiops_test_anomaly", {"instance": "b"}, lambda i: _flat(i + 3)),
    ]
    out += [
        SeriesSpec("aiops_hostile", {"v": v}, lambda i, k=k: float(k))
        for k, v in enumerate(LOADED_HOSTILE)
    ]
    return out


SPIKE_INDEX = 1000  # sample index of the injected latency spike on instance "a"


def _flat(i: int) -> float:
    return 10.0 + 0.1 * ((i * 7919) % 13) / 13


def _latency_a(i: int) -> float:
    base = 0.2 + 0.05 * math.sin(2 * math.pi * i / 240) + 0.01 * ((i * 7919) % 13) / 13
    return base + (3.0 if i == SPIKE_INDEX else 0.0)


def _latency_b(i: int) -> float:
    return 0.3 + 0.02 * math.cos(2 * math.pi * i / 240) + 0.01 * ((i * 104729) % 11) / 11


def build_history(
    end: float | None = None,
    hours: float = HOURS,
    step: int = STEP,
    series: list[SeriesSpec] | None = None,
) -> History:
    now = time.time() if end is None else end
    last = int(now // step) * step - step  # the newest sample is at least one step in the past
    start = last - int(hours * 3600 // step) * step
    return History(start=start, end=last, step=step, series=series or default_series())


def write_openmetrics(history: History, path: Path) -> None:
    by_metric: dict[str, list[SeriesSpec]] = {}
    for s in history.series:
        by_metric.setdefault(s.metric, []).append(s)

    def points(spec: SeriesSpec) -> Iterator[tuple[float, float]]:
        return ((history.timestamp(i), spec.value(i)) for i in range(history.points))

    families = [
        Family(metric, specs[0].type, [(spec.labels, points(spec)) for spec in specs])
        for metric, specs in by_metric.items()
    ]
    with path.open("w", encoding="utf-8") as f:
        localprom.write_openmetrics(families, f)


def binaries() -> tuple[str, str]:
    return localprom.binaries()


@dataclass
class RunningPrometheus:
    url: str
    history: History
    process: subprocess.Popen
    data_dir: Path


@contextmanager
def run_prometheus(
    workdir: Path, history: History, *, ready_timeout: float = 60.0
) -> Iterator[RunningPrometheus]:
    """Load ``history`` into a fresh TSDB and serve it on 127.0.0.1 until the block exits."""
    workdir.mkdir(parents=True, exist_ok=True)
    om = workdir / "history.om"
    data = workdir / "data"
    write_openmetrics(history, om)
    localprom.load_openmetrics(om, data)
    with localprom.run_prometheus(workdir, data_dir=data, ready_timeout=ready_timeout) as running:
        yield RunningPrometheus(
            url=running.url, history=history, process=running.process, data_dir=data
        )
