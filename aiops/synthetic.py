"""Synthetic labelled metrics: seasonal series with injected anomalies and their windows.

Pure and deterministic: the same :class:`SyntheticConfig` always gives the same values and
the same labels (each series draws from its own ``numpy`` generator seeded by
``(seed, index)``). Used by ``benchmarks/quality.py`` to measure detection quality and to
tune detector defaults; not a model of any one real system.

Each series: ``level * (1 + daily + weekly + trend) + noise``, with

- a daily profile (two harmonics, random phase and amplitude; some series almost flat),
- a weekly factor (weekends lower) on some series,
- a linear trend of a few percent per week,
- AR(1) noise (autocorrelation 0..0.6) of standard deviation ``sigma`` (1-4% of the level),

labelled ``series`` (``s000``...), ``anomaly`` (its kind, or ``none``) and ``pattern``
(``weekly`` when it has the weekend drop, else ``daily``), and one *kind* of anomaly, injected ``anomalies_per_series`` times after the warm-up (some
series get none: they measure false positives). Kinds and their labelled window
``[start, end)`` (magnitudes in units of ``sigma``):

============== ==================================================================== =========
kind           what is injected                                                     window
============== ==================================================================== =========
``spike``      ``+6..12 sigma`` for 1-3 steps                                        those steps
``dip``        ``-6..12 sigma`` for 3-10 steps                                       those steps
``level_shift`` ``±5..10 sigma`` for 1-6 h, then back                                the shift
``variance``   noise ``x3..6`` for 1-6 h                                            the burst
``drift``      a ramp from 0 to ``±10..20 sigma`` over 2-8 h, then back at once      the ramp
============== ==================================================================== =========

::

    cfg = SyntheticConfig(days=21, step=60, series=36, seed=7)
    data = generate(cfg)
    write_openmetrics(families(data), out)          # streamed, one series at a time
    json.dump(labels_document(data), f)             # the labels file (aiops.evaluation format)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from scipy.signal import lfilter

from aiops.errors import InvalidInput
from aiops.localprom import Family

__all__ = [
    "ANOMALY_KINDS",
    "Injected",
    "SyntheticConfig",
    "SyntheticSeries",
    "SyntheticSet",
    "families",
    "generate",
    "labels_document",
]

log = logging.getLogger(__name__)

ANOMALY_KINDS: tuple[str, ...] = ("spike", "dip", "level_shift", "variance", "drift")
_CYCLE = (*ANOMALY_KINDS, "none")
_DAY = 86_400.0
_HOUR = 3_600.0


@dataclass(frozen=True)
class SyntheticConfig:
    days: int = 21
    step: int = 60
    series: int = 36
    seed: int = 7
    start: float = datetime(2026, 1, 5, tzinfo=UTC).timestamp()  # a Monday, 00:00 UTC
    warmup_days: int = 4
    anomalies_per_series: tuple[int, int] = (3, 5)
    metric: str = "aiops_synth"

    def __post_init__(self) -> None:
        if self.days <= self.warmup_days + 1:
            raise InvalidInput("days must exceed warmup_days + 1", field="days")
        if self.step <= 0 or _DAY % self.step:
            raise InvalidInput("step must be a positive divisor of a day (seconds)", field="step")
        if self.series < 1:
            raise InvalidInput("series must be >= 1", field="series")
        lo, hi = self.anomalies_per_series
        if not 1 <= lo <= hi:
            raise InvalidInput("anomalies_per_series must be (lo, hi) with 1 <= lo <= hi", field="anomalies_per_series")

    @property
    def points(self) -> int:
        return int(self.days * _DAY // self.step)

    @property
    def end(self) -> float:
        """One step past the last sample."""
        return self.start + self.points * self.step

    @property
    def eval_start(self) -> float:
        """End of the warm-up: no anomaly is injected before it."""
        return self.start + self.warmup_days * _DAY


@dataclass(frozen=True)
class Injected:
    kind: str
    start: float  # Unix seconds, window [start, end)
    end: float
    magnitude: float  # in sigma (variance: the factor on sigma)


@dataclass(frozen=True)
class SyntheticSeries:
    index: int
    labels: dict[str, str]
    kind: str  # the anomaly kind of this series, or "none"
    level: float
    sigma: float
    daily: float  # amplitude of the daily profile, fraction of level
    weekly: float  # weekend drop, fraction of level
    trend: float  # fraction of level per week
    phi: float  # AR(1) coefficient of the noise
    anomalies: tuple[Injected, ...]
    config: SyntheticConfig = field(repr=False)

    def timestamps(self) -> np.ndarray:
        c = self.config
        return c.start + np.arange(c.points, dtype=np.float64) * c.step

    def values(self) -> np.ndarray:
        """The series' values (recomputed on each call; deterministic)."""
        c = self.config
        rng = np.random.default_rng([c.seed, self.index, 1])
        ts = self.timestamps()
        day_phase = 2 * np.pi * ((ts % _DAY) / _DAY)
        prof = rng.uniform(0, 2 * np.pi, size=2)
        daily = self.daily * (np.sin(day_phase + prof[0]) + 0.35 * np.sin(2 * day_phase + prof[1])) / 1.35
        weekly = -self.weekly * _weekend(ts)
        trend = self.trend * (ts - c.start) / (7 * _DAY)
        base = self.level * (1.0 + daily + weekly + trend)
        eps = rng.standard_normal(len(ts))
        scale = np.full(len(ts), 1.0)
        shift = np.zeros(len(ts))
        for a in self.anomalies:
            i0, i1 = self._span(a)
            if a.kind in ("spike", "dip", "level_shift"):
                shift[i0:i1] += a.magnitude * self.sigma
            elif a.kind == "variance":
                scale[i0:i1] *= a.magnitude
            elif a.kind == "drift":
                n = i1 - i0
                shift[i0:i1] += a.magnitude * self.sigma * (np.arange(1, n + 1) / n)
        innov = eps * math.sqrt(1 - self.phi**2)
        zi = np.array([self.phi * rng.standard_normal()])  # a stationary start
        noise = lfilter([1.0], [1.0, -self.phi], innov, zi=zi)[0] if self.phi else innov
        # the burst scales the noise itself, so nothing of it leaks past its window
        return base + self.sigma * noise * scale + shift

    def _span(self, a: Injected) -> tuple[int, int]:
        c = self.config
        return int(round((a.start - c.start) / c.step)), int(round((a.end - c.start) / c.step))


@dataclass(frozen=True)
class SyntheticSet:
    config: SyntheticConfig
    series: tuple[SyntheticSeries, ...]

    @property
    def samples(self) -> int:
        return self.config.points * len(self.series)


def _weekend(ts: np.ndarray) -> np.ndarray:
    """1 on Saturday and Sunday, 0 on weekdays, with 6-hour raised-cosine transitions
    centred on the midnights (traffic does not drop in one minute)."""
    week_pos = ((ts / _DAY) + 3) % 7  # days since Monday 00:00 (1970-01-01 was a Thursday)
    half = 0.125  # 3 hours, in days

    def rise(x: np.ndarray) -> np.ndarray:
        return 0.5 - 0.5 * np.cos(np.pi * np.clip((x + half) / (2 * half), 0.0, 1.0))

    # Saturday 00:00 is day 5, Monday 00:00 day 7 == day 0 (the fall straddles the wrap)
    return np.where(week_pos >= 3.5, rise(week_pos - 5) - rise(week_pos - 7), 1 - rise(week_pos))


def _anomalies(kind: str, rng: np.random.Generator, c: SyntheticConfig) -> tuple[Injected, ...]:
    if kind == "none":
        return ()
    lo, hi = c.anomalies_per_series
    n = int(rng.integers(lo, hi + 1))
    first = c.eval_start + 6 * _HOUR
    last = c.end - 12 * _HOUR  # room for the longest anomaly and a return to normal
    slot = (last - first) / n
    out = []
    for k in range(n):
        if kind == "spike":
            dur, mag = int(rng.integers(1, 4)) * c.step, rng.uniform(6, 12)
        elif kind == "dip":
            dur, mag = int(rng.integers(3, 11)) * c.step, -rng.uniform(6, 12)
        elif kind == "level_shift":
            dur, mag = rng.uniform(1, 6) * _HOUR, rng.choice([-1, 1]) * rng.uniform(5, 10)
        elif kind == "variance":
            dur, mag = rng.uniform(1, 6) * _HOUR, rng.uniform(3, 6)
        else:  # drift
            dur, mag = rng.uniform(2, 8) * _HOUR, rng.choice([-1, 1]) * rng.uniform(10, 20)
        dur = max(c.step, round(dur / c.step) * c.step)
        room = max(0.0, slot - dur - 6 * _HOUR)
        start = first + k * slot + rng.uniform(0, room)
        start = math.floor(start / c.step) * c.step
        out.append(Injected(kind=kind, start=float(start), end=float(start + dur), magnitude=float(mag)))
    return tuple(out)


def generate(config: SyntheticConfig | None = None) -> SyntheticSet:
    """The series and their injected anomalies (values are computed lazily, per series)."""
    c = config or SyntheticConfig()
    out = []
    for i in range(c.series):
        rng = np.random.default_rng([c.seed, i, 0])
        kind = _CYCLE[i % len(_CYCLE)]
        level = float(10 ** rng.uniform(1, 3))
        sigma = level * float(rng.uniform(0.01, 0.04))
        daily = float(rng.choice([0.02, rng.uniform(0.1, 0.5)], p=[0.25, 0.75]))
        weekly = float(rng.choice([0.0, rng.uniform(0.1, 0.3)], p=[0.5, 0.5]))
        trend = float(rng.uniform(-0.03, 0.03))
        phi = float(rng.uniform(0.0, 0.6))
        out.append(
            SyntheticSeries(
                index=i,
                labels={"series": f"s{i:03d}", "anomaly": kind, "pattern": "weekly" if weekly else "daily"},
                kind=kind,
                level=level,
                sigma=sigma,
                daily=daily,
                weekly=weekly,
                trend=trend,
                phi=phi,
                anomalies=_anomalies(kind, rng, c),
                config=c,
            )
        )
    log.debug("synthetic set: %d series x %d points", c.series, c.points)
    return SyntheticSet(config=c, series=tuple(out))


def families(data: SyntheticSet) -> list[Family]:
    """One gauge family for :func:`aiops.localprom.write_openmetrics`; each series' values are
    computed when the writer reaches it, so memory holds one series at a time."""

    def samples() -> Iterator[tuple[dict[str, str], Iterator[tuple[float, float]]]]:
        for s in data.series:
            yield s.labels, zip(s.timestamps().tolist(), s.values().tolist(), strict=True)

    return [Family(metric=data.config.metric, type="gauge", samples=samples())]


def labels_document(data: SyntheticSet) -> dict:
    """The labels file (``{"series": [...]}`` form of :mod:`aiops.evaluation`), every series
    listed (those without anomalies with no windows)."""
    from aiops.evaluation import dump_labels_json

    return dump_labels_json((s.labels, [(a.start, a.end, a.kind) for a in s.anomalies]) for s in data.series)
