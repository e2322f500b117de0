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
(``weekly`` when it has the weekend drop, else ``daily``), and one *kind* of anomaly,
injected ``anomalies_per_series`` times after the warm-up (some series get none: they measure
false positives). Kinds and their labelled window
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

**Realistic mix** (``SyntheticConfig(realistic=True)``, what ``benchmarks/quality.py`` uses):
what real metrics have and the classic set lacks. Every series has a *shape* (label ``shape``):

- ``gauge``: the seasonal series above with heavy-tailed noise (Student-t innovations, 4-10
  degrees of freedom), short unlabelled bursts of 2-2.5x noise (normal behaviour), and on
  half of them values rounded to a resolution of 0.5 or 1 sigma;
- ``count``: small integer counts (Poisson around a daily rate of 0.2-10 per step,
  over-dispersed by a gamma factor, with the same bursts): zeros, ones, a few larger values;
- ``flat``: a gauge that sits still: a level on a resolution grid (1, 0.5, 0.1 or 5) with a
  slow daily wander and rare one-step flickers, half of them at 0 with rare ordinary blips
  (a queue that is usually empty): a flat stretch followed by an ordinary value is normal here;

with the five kinds above (magnitudes in the shape's scale: sigma, ``sqrt(rate)`` counts (at
least 1), or the resolution; spikes and dips 8-16; a count dip goes to zero for 10-60 minutes;
a flat series' variance burst x5-10) plus two *lasting* kinds, labelled for their first hour
only (:data:`LASTING_WINDOW`): after it the change is the new normal.

- ``lasting_shift``: the level moves by 5-10 and stays (up and down in turn, so it stays
  within 10; a count or an empty queue goes up, then back down to where it was);
- ``lasting_variance``: the noise grows x2.5-4 (flat x5-10; counts: log-normal bursts of the
  rate, x4-8) and stays until half-way to the next one (days on 21 days), where it quietly goes back
  (not labelled: a calmer series is no alert; the spreads do not compound);

and gaps: on 60% of the series, 1-4 runs of 1-60 missing points (NaN in :meth:`values`, absent
from :func:`families` and :meth:`SyntheticSeries.observed`, as a failed scrape is), never within
an hour of a window. A detector that keeps flagging a lasting change after its first hour
raises false events; one that alerts on every ordinary value after a flat stretch, many.

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
    "LASTING_KINDS",
    "LASTING_WINDOW",
    "REALISTIC_KINDS",
    "SHAPES",
    "Injected",
    "SyntheticConfig",
    "SyntheticSeries",
    "SyntheticSet",
    "anomaly_kinds",
    "families",
    "generate",
    "labels_document",
]

log = logging.getLogger(__name__)

ANOMALY_KINDS: tuple[str, ...] = ("spike", "dip", "level_shift", "variance", "drift")
LASTING_KINDS: tuple[str, ...] = ("lasting_shift", "lasting_variance")
REALISTIC_KINDS: tuple[str, ...] = (*ANOMALY_KINDS, *LASTING_KINDS)
SHAPES: tuple[str, ...] = ("gauge", "count", "flat")
_CYCLE = (*ANOMALY_KINDS, "none")
_REALISTIC_CYCLE = (*REALISTIC_KINDS, "none")
_DAY = 86_400.0
_HOUR = 3_600.0
LASTING_WINDOW = _HOUR
"""The labelled window of a lasting change: its first hour (after it, the new normal)."""
_GAP_CLEARANCE = _HOUR


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
    realistic: bool = False
    """The realistic mix (shapes, heavy tails, lasting changes, gaps): see the module doc."""

    def __post_init__(self) -> None:
        if self.days <= self.warmup_days + 1:
            raise InvalidInput("days must exceed warmup_days + 1", field="days")
        if self.step <= 0 or _DAY % self.step:
            raise InvalidInput("step must be a positive divisor of a day (seconds)", field="step")
        if self.series < 1:
            raise InvalidInput("series must be >= 1", field="series")
        lo, hi = self.anomalies_per_series
        if not 1 <= lo <= hi:
            raise InvalidInput(
                "anomalies_per_series must be (lo, hi) with 1 <= lo <= hi",
                field="anomalies_per_series",
            )

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

    @property
    def lasting(self) -> bool:
        """The change stays after its window (the window is its first hour)."""
        return self.kind in LASTING_KINDS


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
    # the realistic mix (defaults: the classic series)
    shape: str = "gauge"
    resolution: float = 0.0  # values are multiples of it (0: continuous)
    tail_df: float = 0.0  # Student-t degrees of freedom of the noise (0: Gaussian)
    bursts_per_day: float = 0.0  # unlabelled noise bursts (normal behaviour)
    rate: float = 0.0  # count: mean count per step
    dispersion: float = 0.0  # count: gamma shape of the rate's over-dispersion (0: Poisson)
    zero_based: bool = False  # flat: sits at 0 with rare blips
    gaps: tuple[tuple[float, float], ...] = ()  # missing points, [start, end) Unix seconds

    def timestamps(self) -> np.ndarray:
        c = self.config
        return c.start + np.arange(c.points, dtype=np.float64) * c.step

    def observed(self) -> tuple[np.ndarray, np.ndarray]:
        """Timestamps and values without the missing points (what Prometheus would hold)."""
        ts, v = self.timestamps(), self.values()
        keep = ~np.isnan(v)
        return ts[keep], v[keep]

    def values(self) -> np.ndarray:
        """The series' values (recomputed on each call; deterministic); NaN where missing."""
        c = self.config
        if c.realistic:
            return self._realistic_values()
        rng = np.random.default_rng([c.seed, self.index, 1])
        ts = self.timestamps()
        day_phase = 2 * np.pi * ((ts % _DAY) / _DAY)
        prof = rng.uniform(0, 2 * np.pi, size=2)
        daily = (
            self.daily
            * (np.sin(day_phase + prof[0]) + 0.35 * np.sin(2 * day_phase + prof[1]))
            / 1.35
        )
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

    def _effects(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The injected anomalies as arrays: an additive shift (in the series' units), a factor
        on the noise, and a factor on the level (a count dip: 0)."""
        shift = np.zeros(n)
        scale = np.ones(n)
        mult = np.ones(n)
        for a in self.anomalies:
            i0, i1 = self._span(a)
            if a.kind == "spike" or a.kind == "level_shift":
                shift[i0:i1] += a.magnitude * self.sigma
            elif a.kind == "dip":
                if self.shape == "count":
                    mult[i0:i1] = 0.0
                else:
                    shift[i0:i1] += a.magnitude * self.sigma
            elif a.kind == "variance":
                scale[i0:i1] *= a.magnitude
            elif a.kind == "drift":
                k = i1 - i0
                shift[i0:i1] += a.magnitude * self.sigma * (np.arange(1, k + 1) / k)
            elif a.kind == "lasting_shift":
                shift[i0:] += a.magnitude * self.sigma
        # a lasting change of spread holds until half-way to the next one, then quietly goes
        # back (unlabelled: a calmer series is no alert), so spreads do not compound
        spreads = [a for a in self.anomalies if a.kind == "lasting_variance"]
        for k, a in enumerate(spreads):
            i0, _ = self._span(a)
            i1 = (i0 + self._span(spreads[k + 1])[0]) // 2 if k + 1 < len(spreads) else n
            scale[i0:i1] *= a.magnitude
        return shift, scale, mult

    def _realistic_values(self) -> np.ndarray:
        c = self.config
        rng = np.random.default_rng([c.seed, self.index, 1])
        ts = self.timestamps()
        n = len(ts)
        day_phase = 2 * np.pi * ((ts % _DAY) / _DAY)
        prof = rng.uniform(0, 2 * np.pi, size=2)
        profile = (np.sin(day_phase + prof[0]) + 0.35 * np.sin(2 * day_phase + prof[1])) / 1.35
        weekly = -self.weekly * _weekend(ts)
        shift, scale, mult = self._effects(n)
        bursts = _bursts(rng, n, self.bursts_per_day * c.step / _DAY, c.step)
        if self.shape == "count":
            lam = self.rate * np.clip(1.0 + self.daily * profile + weekly, 0.05, None)
            if self.dispersion:
                lam = lam * rng.gamma(self.dispersion, 1.0 / self.dispersion, n)
            s = 0.5 * np.log(scale)  # a variance anomaly: log-normal bursts of the rate, mean kept
            lam = lam * np.exp(s * rng.standard_normal(n) - s**2 / 2) * bursts
            lam = np.clip(lam * mult + shift, 0.0, None)
            out = rng.poisson(lam).astype(np.float64)
        else:
            noise = _ar1(rng, n, self.phi, self.tail_df)
            if self.shape == "flat":
                wander = self.daily * profile * self.resolution  # within a few resolution steps
                out = self.level + wander + 0.2 * self.resolution * noise * scale + shift
                if self.zero_based:  # usually empty: rare ordinary blips of 1-3 units
                    blips = rng.random(n) < self.bursts_per_day * c.step / _DAY
                    out = out + blips * self.resolution * rng.integers(1, 4, n)
                out = np.clip(out, 0.0, None)
            else:
                trend = self.trend * (ts - c.start) / (7 * _DAY)
                base = self.level * (1.0 + self.daily * profile + weekly + trend)
                out = base + self.sigma * noise * scale * bursts + shift
        if self.resolution:
            out = np.round(out / self.resolution) * self.resolution
        for g0, g1 in self.gaps:
            out[(ts >= g0) & (ts < g1)] = np.nan
        return out


def _ar1(rng: np.random.Generator, n: int, phi: float, df: float) -> np.ndarray:
    """Unit-variance AR(1) noise with Gaussian or Student-t (``df`` > 2) innovations."""
    if df:
        eps = rng.standard_t(df, n) / math.sqrt(df / (df - 2))
    else:
        eps = rng.standard_normal(n)
    if not phi:
        return eps
    zi = np.array([phi * rng.standard_normal()])
    return lfilter([1.0], [1.0, -phi], eps * math.sqrt(1 - phi**2), zi=zi)[0]


def _bursts(rng: np.random.Generator, n: int, per_step: float, step: int) -> np.ndarray:
    """A factor on the noise: 1, and 2-2.5 during short bursts (5-30 minutes) that start with
    probability ``per_step`` at each step: bursty, but normal (not labelled)."""
    out = np.ones(n)
    if per_step <= 0:
        return out
    for i in np.flatnonzero(rng.random(n) < per_step).tolist():
        k = max(1, int(rng.uniform(300, 1800) // step))
        out[i : i + k] = rng.uniform(2.0, 2.5)
    return out


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


def _anomalies(
    kind: str, rng: np.random.Generator, c: SyntheticConfig, shape: str = "", upward: bool = False
) -> tuple[Injected, ...]:
    if kind == "none":
        return ()
    lo, hi = c.anomalies_per_series
    n = int(rng.integers(lo, hi + 1))
    first = c.eval_start + 6 * _HOUR
    last = c.end - 12 * _HOUR  # room for the longest anomaly and a return to normal
    slot = (last - first) / n
    out = []
    for k in range(n):
        if c.realistic:
            dur, mag = _realistic_anomaly(kind, rng, c, shape, upward)
        elif kind == "spike":
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
        out.append(
            Injected(kind=kind, start=float(start), end=float(start + dur), magnitude=float(mag))
        )
    if kind == "lasting_shift":  # alternate up and down, so the level stays within ±10
        mags = [abs(a.magnitude) for a in out]
        if upward:  # a count or an empty queue: up, then back to where it was
            mags = [m if k % 2 == 0 else -mags[k - 1] for k, m in enumerate(mags)]
        else:
            sign = 1.0 if out[0].magnitude > 0 else -1.0
            mags = [sign * m * (-1) ** k for k, m in enumerate(mags)]
        out = [Injected(a.kind, a.start, a.end, float(m)) for a, m in zip(out, mags, strict=True)]
    return tuple(out)


def _realistic_anomaly(
    kind: str, rng: np.random.Generator, c: SyntheticConfig, shape: str, upward: bool
) -> tuple[float, float]:
    """(duration, magnitude) of one anomaly of the realistic mix; magnitudes in the shape's
    scale."""
    sign = 1.0 if upward else float(rng.choice([-1, 1]))
    if kind == "spike":
        return int(rng.integers(1, 4)) * c.step, rng.uniform(8, 16)
    if kind == "dip":
        if shape == "count":  # the count drops to zero
            return rng.uniform(10, 60) * 60, 0.0
        return int(rng.integers(3, 11)) * c.step, -rng.uniform(8, 16)
    if kind == "level_shift":
        return rng.uniform(1, 6) * _HOUR, sign * rng.uniform(5, 10)
    if kind == "variance":
        return rng.uniform(1, 6) * _HOUR, rng.uniform(5, 10) if shape == "flat" else rng.uniform(
            3, 6
        )
    if kind == "drift":
        return rng.uniform(2, 8) * _HOUR, sign * rng.uniform(10, 20)
    if kind == "lasting_shift":
        return LASTING_WINDOW, sign * rng.uniform(5, 10)
    # lasting_variance
    lo, hi = {"flat": (5, 10), "count": (4, 8)}.get(shape, (2.5, 4))
    return LASTING_WINDOW, rng.uniform(lo, hi)


def _realistic_series(i: int, c: SyntheticConfig) -> SyntheticSeries:
    rng = np.random.default_rng([c.seed, i, 0])
    kind = _REALISTIC_CYCLE[i % len(_REALISTIC_CYCLE)]
    shape = SHAPES[i % len(SHAPES)]
    weekly = float(rng.choice([0.0, rng.uniform(0.1, 0.3)], p=[0.5, 0.5]))
    extra: dict = {}
    upward = False
    if shape == "gauge":
        level = float(10 ** rng.uniform(1, 3))
        sigma = level * float(rng.uniform(0.01, 0.04))
        daily = float(rng.choice([0.02, rng.uniform(0.1, 0.5)], p=[0.25, 0.75]))
        resolution = float(rng.choice([0.0, 0.0, 0.5, 1.0])) * sigma
        extra = {
            "tail_df": float(rng.choice([4.0, 6.0, 10.0])),
            "bursts_per_day": float(rng.uniform(0.5, 4)),
        }
        phi = float(rng.uniform(0.0, 0.6))
    elif shape == "count":
        rate = float(rng.uniform(5, 30)) if kind == "dip" else float(10 ** rng.uniform(-0.7, 1))
        level, sigma, resolution, phi = rate, max(1.0, math.sqrt(rate)), 1.0, 0.0
        daily = float(rng.uniform(0.2, 0.8))
        extra = {
            "rate": rate,
            "dispersion": float(rng.uniform(1, 5)),
            "bursts_per_day": float(rng.uniform(0.5, 4)),
        }
        upward = kind != "dip"  # more errors, more requests: a count rises
    else:  # flat
        resolution = float(rng.choice([1.0, 0.5, 0.1, 5.0]))
        zero_based = kind != "dip" and bool(rng.random() < 0.5)
        level = 0.0 if zero_based else resolution * float(rng.integers(20, 200))
        sigma, phi = resolution, 0.9
        daily = (
            0.0 if zero_based else float(rng.uniform(0.0, 2.0))
        )  # the wander, in resolution steps
        extra = {"zero_based": zero_based, "bursts_per_day": float(rng.uniform(1, 6))}
        upward = zero_based
        weekly = 0.0
    anomalies = _anomalies(kind, rng, c, shape, upward)
    return SyntheticSeries(
        index=i,
        labels={
            "series": f"s{i:03d}",
            "anomaly": kind,
            "pattern": "weekly" if weekly else "daily",
            "shape": shape,
        },
        kind=kind,
        level=level,
        sigma=sigma,
        daily=daily,
        weekly=weekly,
        trend=float(rng.uniform(-0.03, 0.03)) if shape == "gauge" else 0.0,
        phi=phi,
        anomalies=anomalies,
        config=c,
        shape=shape,
        resolution=resolution,
        gaps=_gaps(rng, c, anomalies),
        **extra,
    )


def _gaps(
    rng: np.random.Generator, c: SyntheticConfig, anomalies: tuple[Injected, ...]
) -> tuple[tuple[float, float], ...]:
    """On 60% of the series, 1-4 runs of 1-60 missing points, clear of every window by an hour."""
    if rng.random() >= 0.6:
        return ()
    busy = [(a.start - _GAP_CLEARANCE, a.end + _GAP_CLEARANCE) for a in anomalies]
    out: list[tuple[float, float]] = []
    for _ in range(int(rng.integers(1, 5))):
        k = int(round(math.exp(rng.uniform(0, math.log(60)))))
        for _try in range(50):
            g0 = (
                c.start
                + _DAY
                + math.floor(rng.uniform(0, c.end - c.start - _DAY - k * c.step) / c.step) * c.step
            )
            g1 = g0 + k * c.step
            if all(g1 <= b0 or g0 >= b1 for b0, b1 in busy):
                out.append((float(g0), float(g1)))
                busy.append((g0 - c.step, g1 + c.step))
                break
    return tuple(sorted(out))


def anomaly_kinds(config: SyntheticConfig) -> tuple[str, ...]:
    """The anomaly kinds a config injects."""
    return REALISTIC_KINDS if config.realistic else ANOMALY_KINDS


def generate(config: SyntheticConfig | None = None) -> SyntheticSet:
    """The series and their injected anomalies (values are computed lazily, per series)."""
    c = config or SyntheticConfig()
    if c.realistic:
        return SyntheticSet(
            config=c, series=tuple(_realistic_series(i, c) for i in range(c.series))
        )
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
                labels={
                    "series": f"s{i:03d}",
                    "anomaly": kind,
                    "pattern": "weekly" if weekly else "daily",
                },
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
            ts, values = s.observed()  # a missing point is no sample
            yield s.labels, zip(ts.tolist(), values.tolist(), strict=True)

    return [Family(metric=data.config.metric, type="gauge", samples=samples())]


def labels_document(data: SyntheticSet) -> dict:
    """The labels file (``{"series": [...]}`` form of :mod:`aiops.evaluation`), every series
    listed (those without anomalies with no windows)."""
    from aiops.evaluation import dump_labels_json

    return dump_labels_json(
        (s.labels, [(a.start, a.end, a.kind) for a in s.anomalies]) for s in data.series
    )
