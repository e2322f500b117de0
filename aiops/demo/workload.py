"""The demo workload: a deterministic, seeded function of time for every metric.

Three services (``checkout``, ``search``, ``payments``) and two queues (``orders``,
``emails``) follow a daily shape (busy afternoons, quiet nights, a lunch dip) with a little
noise, and every ``incident_every`` seconds one incident is injected at a time and on a
target derived from the seed and the incident's number:

* ``error_burst``   a service answers 5xx for 8-25 % of its requests,
* ``latency_spike`` a service's latency is 4-8 times its normal,
* ``traffic_drop``  a service receives 15-35 % of its normal traffic,
* ``queue_backlog`` a queue's consumers stall: its depth climbs, then drains.

Values are piecewise constant on a grid of :data:`GRID` seconds, so counters are exact sums
from ``origin`` (where every counter is 0): the history loaded into Prometheus and the live
exporter give the same value at the same instant, and a restart never looks like a reset.
Pure: numpy only, no I/O.

Metrics (what the exporter serves and the history holds)::

    demo_http_requests_total{service, code}                 counter, code 200 or 500
    demo_http_request_duration_seconds_bucket{service, le}  histogram (with _sum, _count)
    demo_queue_depth{queue}                                 gauge
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aiops.errors import InvalidInput
from aiops.localprom import Family

__all__ = [
    "BUCKETS",
    "GRID",
    "INCIDENT_KINDS",
    "QUEUES",
    "SERVICES",
    "Incident",
    "Workload",
    "le_label",
]

#: Seconds per grid cell: rates are constant within a cell.
GRID = 5.0
#: Service -> (peak requests/s, median latency in seconds at peak, baseline error ratio).
SERVICES: dict[str, tuple[float, float, float]] = {
    "checkout": (40.0, 0.080, 0.004),
    "search": (120.0, 0.035, 0.002),
    "payments": (15.0, 0.150, 0.006),
}
#: Queue -> typical depth at peak.
QUEUES: dict[str, float] = {"orders": 40.0, "emails": 15.0}
#: Histogram bucket bounds (seconds); +Inf is added.
BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
INCIDENT_KINDS = ("error_burst", "latency_spike", "traffic_drop", "queue_backlog")
_SIGMA = 0.55  # log-normal latency shape
_DRAIN = 90.0  # seconds for a backlog to drain by 1/e after its incident
_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, vectorised (uint64 arithmetic wraps)."""
    with np.errstate(over="ignore"):
        x = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK
        x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK
        x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK
        return x ^ (x >> np.uint64(31))


def _uniform(seed: int, stream: int, index: np.ndarray) -> np.ndarray:
    """Deterministic uniforms in [0, 1) for integer ``index`` values of one ``stream``."""
    idx = np.asarray(index, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        key = _mix(
            np.full(
                idx.shape, np.uint64(seed % (1 << 63)) * np.uint64(1_000_003) + np.uint64(stream)
            )
        )
        h = _mix(idx ^ key)
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _normal(seed: int, stream: int, index: np.ndarray) -> np.ndarray:
    """Deterministic standard normals (Box-Muller over two uniform streams)."""
    u1 = _uniform(seed, 2 * stream, index)
    u2 = _uniform(seed, 2 * stream + 1, index)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * math.pi * u2)


def _norm_cdf(x: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr

    return ndtr(x)


@dataclass(frozen=True)
class Incident:
    """One injected incident: ``kind`` on ``target`` during ``[start, end)``."""

    number: int
    kind: str
    target: str
    start: float
    end: float
    magnitude: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "kind": self.kind,
            "target": self.target,
            "start": self.start,
            "end": self.end,
            "magnitude": round(self.magnitude, 3),
        }


@dataclass
class Workload:
    """The demo workload of one ``seed``; counters count from ``origin`` (Unix seconds)."""

    seed: int = 7
    origin: float = 0.0
    incident_every: float = 900.0
    incident_duration: float = 240.0
    _cum_cell: int = field(default=0, init=False, repr=False)
    _cum: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.incident_every < 60:
            raise InvalidInput("incident_every must be at least 60 s", field="incident_every")
        if not 0 < self.incident_duration <= 0.6 * self.incident_every:
            raise InvalidInput(
                "incident_duration must be positive and at most 60 % of incident_every",
                field="incident_duration",
            )
        self.origin = math.floor(self.origin / GRID) * GRID

    # ------------------------------------------------------------------ incidents

    def _incident_arrays(self, k: np.ndarray) -> dict[str, np.ndarray]:
        """Per incident number: kind index, target index, start, end, magnitude (vectorised)."""
        period, base = self.incident_every, self.incident_duration
        kind = np.floor(_uniform(self.seed, 101, k) * len(INCIDENT_KINDS)).astype(np.int64)
        target_u = _uniform(self.seed, 102, k)
        duration = base * (0.8 + 0.4 * _uniform(self.seed, 103, k))
        start = k * period + (period - duration) * (0.1 + 0.8 * _uniform(self.seed, 104, k))
        start = np.floor(start / GRID) * GRID
        end = start + np.ceil(duration / GRID) * GRID
        magnitude = _uniform(self.seed, 105, k)
        return {
            "kind": kind,
            "target_u": target_u,
            "start": start,
            "end": end,
            "magnitude": magnitude,
        }

    def _target(self, kind: str, u: float) -> str:
        names = list(QUEUES) if kind == "queue_backlog" else list(SERVICES)
        return names[min(int(u * len(names)), len(names) - 1)]

    def incidents(self, start: float, end: float) -> list[Incident]:
        """Incidents overlapping ``[start, end)``, in time order."""
        k0 = math.floor(start / self.incident_every) - 1
        k1 = math.floor(end / self.incident_every)
        ks = np.arange(k0, k1 + 1, dtype=np.int64)
        arr = self._incident_arrays(ks)
        out = []
        for i, k in enumerate(ks):
            s, e = float(arr["start"][i]), float(arr["end"][i])
            if e <= start or s >= end:
                continue
            kind = INCIDENT_KINDS[int(arr["kind"][i])]
            out.append(
                Incident(
                    int(k),
                    kind,
                    self._target(kind, float(arr["target_u"][i])),
                    s,
                    e,
                    self._magnitude(kind, float(arr["magnitude"][i])),
                )
            )
        return out

    def incident_at(self, t: float) -> Incident | None:
        """The incident active at ``t``, if any."""
        for inc in self.incidents(t, t + GRID):
            if inc.start <= t < inc.end:
                return inc
        return None

    @staticmethod
    def _magnitude(kind: str, u: float | np.ndarray) -> Any:
        if kind == "error_burst":
            return 0.08 + 0.17 * u  # error ratio
        if kind == "latency_spike":
            return 4.0 + 4.0 * u  # latency multiplier
        if kind == "traffic_drop":
            return 0.15 + 0.20 * u  # traffic multiplier
        return 4.0 + 4.0 * u  # queue growth per second

    def _effects(self, t: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
        """Per target, the incident multipliers at times ``t`` (arrays shaped like ``t``)."""
        k = np.floor(t / self.incident_every).astype(np.int64)
        ones, zeros = np.ones_like(t), np.zeros_like(t)
        out: dict[str, dict[str, np.ndarray]] = {
            s: {
                "error_ratio": np.full_like(t, np.nan),
                "latency": ones.copy(),
                "traffic": ones.copy(),
            }
            for s in SERVICES
        }
        for q in QUEUES:
            out[q] = {"backlog": zeros.copy()}
        for shift in (0, 1):  # this period's incident, and the previous one (a draining backlog)
            arr = self._incident_arrays(k - shift)
            active = (t >= arr["start"]) & (t < arr["end"])
            for ki, kind in enumerate(INCIDENT_KINDS):
                is_kind = arr["kind"] == ki
                if not is_kind.any():
                    continue
                names = list(QUEUES) if kind == "queue_backlog" else list(SERVICES)
                tidx = np.minimum((arr["target_u"] * len(names)).astype(np.int64), len(names) - 1)
                mag = self._magnitude(kind, arr["magnitude"])
                for ni, name in enumerate(names):
                    sel = is_kind & (tidx == ni)
                    if kind == "queue_backlog":
                        grow = np.where(sel & active, mag * (t - arr["start"]), 0.0)
                        after = sel & (t >= arr["end"])
                        peak = mag * (arr["end"] - arr["start"])
                        drain = np.where(
                            after, peak * np.exp(-np.clip(t - arr["end"], 0, None) / _DRAIN), 0.0
                        )
                        out[name]["backlog"] += grow + drain
                        continue
                    hit = sel & active
                    if kind == "error_burst":
                        out[name]["error_ratio"] = np.where(hit, mag, out[name]["error_ratio"])
                    elif kind == "latency_spike":
                        out[name]["latency"] = np.where(hit, mag, out[name]["latency"])
                    else:
                        out[name]["traffic"] = np.where(hit, mag, out[name]["traffic"])
        return out

    # ------------------------------------------------------------------ shape

    @staticmethod
    def load(t: np.ndarray) -> np.ndarray:
        """The daily shape in [~0.25, ~1]: peak mid-afternoon UTC, trough at night, lunch dip."""
        hour = (np.asarray(t, dtype=np.float64) % 86400.0) / 3600.0
        base = 0.62 + 0.36 * np.cos(2 * math.pi * (hour - 15.0) / 24.0)
        lunch = 0.06 * np.exp(-0.5 * ((hour - 12.5) / 0.6) ** 2)
        return base - lunch

    def _wobble(self, stream: int, t: np.ndarray) -> np.ndarray:
        """Slow deterministic variation (a few sinusoids of seeded periods), about +-3 %."""
        out = np.zeros_like(t)
        for j in range(3):
            u = _uniform(self.seed, 200 + 10 * stream + j, np.array([0, 1]))
            period = 600.0 + 3000.0 * u[0]
            out += 0.01 * np.sin(2 * math.pi * t / period + 2 * math.pi * u[1])
        return out

    def cells(self, i0: int, i1: int) -> dict[str, dict[str, np.ndarray]]:
        """Per service, for grid cells ``[i0, i1)`` after ``origin``: ``rate`` (requests/s),
        ``error_ratio`` and ``median`` latency (seconds)."""
        idx = np.arange(i0, i1, dtype=np.int64)
        t = self.origin + idx * GRID
        cell_no = np.floor(t / GRID).astype(
            np.int64
        )  # absolute, so noise does not depend on origin
        load = self.load(t)
        effects = self._effects(t)
        out = {}
        for si, (name, (peak, median, err)) in enumerate(SERVICES.items()):
            eff = effects[name]
            noise = 1.0 + 0.06 * _normal(self.seed, 10 + si, cell_no) + self._wobble(si, t)
            rate = np.clip(peak * load * noise * eff["traffic"], 0.0, None)
            base_err = np.clip(err * (1.0 + 0.25 * _normal(self.seed, 20 + si, cell_no)), 0.0, 1.0)
            ratio = np.where(np.isnan(eff["error_ratio"]), base_err, eff["error_ratio"])
            lat = (
                median
                * (0.75 + 0.35 * load)
                * (1.0 + 0.05 * _normal(self.seed, 30 + si, cell_no))
                * eff["latency"]
            )
            out[name] = {"rate": rate, "error_ratio": ratio, "median": lat}
        return out

    def cells_at(self, t: float) -> dict[str, dict[str, np.ndarray]]:
        """:meth:`cells` of the one cell holding ``t``."""
        i = math.floor((t - self.origin) / GRID)
        return self.cells(i, i + 1)

    def queue_depth(self, t: np.ndarray | float) -> dict[str, np.ndarray]:
        """Queue depths at times ``t`` (gauges: no sums needed)."""
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        cell_no = np.floor(t / GRID).astype(np.int64)
        effects = self._effects(np.floor(t / GRID) * GRID)
        load = self.load(t)
        out = {}
        for qi, (name, typical) in enumerate(QUEUES.items()):
            base = typical * load * (1.0 + 0.12 * _normal(self.seed, 40 + qi, cell_no))
            out[name] = np.round(np.clip(base + effects[name]["backlog"], 0.0, None))
        return out

    # ------------------------------------------------------------------ counters

    @staticmethod
    def _increments(cells: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """Per counter series key, how much it grows during each cell."""
        logs = np.log(np.asarray(BUCKETS))
        inc: dict[str, np.ndarray] = {}
        for name, c in cells.items():
            n = c["rate"] * GRID
            inc[f"{name}|500"] = n * c["error_ratio"]
            inc[f"{name}|200"] = n - inc[f"{name}|500"]
            z = (logs[None, :] - np.log(c["median"])[:, None]) / _SIGMA
            fractions = _norm_cdf(z)
            for bi, le in enumerate(BUCKETS):
                inc[f"{name}|le={le}"] = n * fractions[:, bi]
            inc[f"{name}|le=+Inf"] = n
            inc[f"{name}|sum"] = n * c["median"] * math.exp(_SIGMA**2 / 2)
        return inc

    def _advance(self, cell: int) -> None:
        """Extend the running totals so they cover every cell before ``cell``."""
        if cell < self._cum_cell:  # going back in time: start over from the origin
            self._cum, self._cum_cell = {}, 0
        start = self._cum_cell
        chunk = 50_000
        while start < cell:
            stop = min(cell, start + chunk)
            for key, inc in self._increments(self.cells(start, stop)).items():
                self._cum[key] = self._cum.get(key, 0.0) + inc.sum()
            start = stop
        self._cum_cell = max(cell, self._cum_cell)

    def counters_at(self, t: float) -> dict[str, float]:
        """Every counter at ``t`` (>= origin): whole cells summed, plus the current cell's share."""
        if t < self.origin:
            raise InvalidInput("time before the workload's origin", field="t")
        pos = (t - self.origin) / GRID
        cell = int(math.floor(pos))
        self._advance(cell)
        part = self._increments(self.cells(cell, cell + 1))
        frac = pos - cell
        return {k: float(self._cum.get(k, 0.0) + part[k][0] * frac) for k in part}

    def series_at(self, t: float) -> dict[str, Any]:
        """Everything the exporter serves at ``t``: counters and queue depths."""
        return {
            "counters": self.counters_at(t),
            "queues": {q: float(v[0]) for q, v in self.queue_depth(t).items()},
        }

    # ------------------------------------------------------------------ history

    def history(
        self, start: float, end: float, step: float, labels: Mapping[str, str] | None = None
    ) -> Iterator[Family]:
        """Metric families sampled every ``step`` s over ``[start, end]`` (step-aligned, a
        multiple of :data:`GRID`), for :func:`aiops.localprom.write_openmetrics`. ``labels``
        are added to every series: give the ``job`` and ``instance`` the live scrape adds, so
        history and live samples are one series."""
        if step % GRID or step <= 0:
            raise InvalidInput(
                f"history step must be a positive multiple of {GRID:g} s", field="step"
            )
        start = max(math.ceil(start / step) * step, math.ceil(self.origin / step) * step)
        if end < start:
            return
        times = start + step * np.arange(int((end - start) // step) + 1, dtype=np.float64)
        # Counters at each sample time: the sum of the increments of every cell before it.
        cell_idx = np.round((times - self.origin) / GRID).astype(np.int64)
        first, last, chunk = 0, int(cell_idx[-1]), 50_000
        running: dict[str, float] = {}
        values: dict[str, list[np.ndarray]] = {}
        while first < last:
            stop = min(last, first + chunk)
            inc = self._increments(self.cells(first, stop))
            want = cell_idx[(cell_idx > first) & (cell_idx <= stop)]
            for key, arr in inc.items():
                cum = np.cumsum(arr) + running.get(key, 0.0)
                running[key] = float(cum[-1])
                values.setdefault(key, []).append(cum[want - first - 1])
            first = stop
        n_zero = int((cell_idx <= 0).sum())  # samples at the origin: every counter is 0
        keys = self._increments(self.cells(0, 1))
        totals = {k: np.concatenate([np.zeros(n_zero), *values.get(k, [])]) for k in keys}
        ts = times.tolist()

        extra = dict(labels or {})

        def pts(arr: np.ndarray) -> list[tuple[float, float]]:
            return list(zip(ts, np.round(arr, 6).tolist()))

        yield Family(
            "demo_http_requests_total",
            "counter",
            [
                ({**extra, "service": s, "code": code}, pts(totals[f"{s}|{code}"]))
                for s in SERVICES
                for code in ("200", "500")
            ],
        )
        les = [*(repr(b) for b in BUCKETS), "+Inf"]
        yield Family(
            "demo_http_request_duration_seconds_bucket",
            "gauge",
            [
                ({**extra, "service": s, "le": le_label(le)}, pts(totals[f"{s}|le={le}"]))
                for s in SERVICES
                for le in les
            ],
        )
        yield Family(
            "demo_http_request_duration_seconds_count",
            "gauge",
            [({**extra, "service": s}, pts(totals[f"{s}|le=+Inf"])) for s in SERVICES],
        )
        yield Family(
            "demo_http_request_duration_seconds_sum",
            "gauge",
            [({**extra, "service": s}, pts(totals[f"{s}|sum"])) for s in SERVICES],
        )
        depth = self.queue_depth(times)
        yield Family(
            "demo_queue_depth", "gauge", [({**extra, "queue": q}, pts(depth[q])) for q in QUEUES]
        )


def le_label(le: float | str) -> str:
    """A bucket bound as Prometheus' client libraries print it (``0.005``, ``1.0``, ``+Inf``)."""
    return "+Inf" if le in ("+Inf", math.inf) else repr(float(le))
