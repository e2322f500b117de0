"""``auto``: the default that needs no tuning. It looks at the series, picks a model, says why.

From the first points of the stream (at least ``decide_after``, and until they span
``period_search_seconds``, two days by default, so a daily cycle is seen twice, or
:data:`MAX_LOOK_POINTS`) it measures the sampling step, and looks for a period: the highest
autocorrelation peak after the first zero crossing (lags up to half the points seen),
corrected for the shorter overlap at long lags. A peak of at least
``min_autocorrelation`` means the series repeats itself (a daily cycle, a batch job every
hour, ...); then each value is compared with the median of the values 1, 2 and 3 periods
earlier (the nearest sample within half a step of each; those that exist; none means the point
is not scored), so the cycle itself is never an anomaly, and one odd period (an incident) is
not echoed as a second anomaly a period later. Without a period the values are used as they are.

On that (de-seasonalised) series the band is a rolling median and a rolling MAD of its
one-step-ahead residuals over the last ``window`` points, as in ``mad``, floored and calibrated
like every kind (:mod:`aiops.detectors.base`): resolution, level and spread floors, the
likelihood of the recent band distances under their long-run distribution. Values are learned
as they are, never clipped: a median of ``window`` points ignores anomalies shorter than half
the window, and a lasting change becomes the new normal within one window.

What it chose is in :meth:`AutoDetector.describe` (and in ``GET /api/detectors/{id}``):
the model, the period and its autocorrelation, the sampling step, the value resolution and the
typical level, and a sentence saying why. The decision is taken once, at a fixed point of the
stream, so scoring in pieces or in one call gives the same scores. Until then values are
compared with their recent past (the model without a period); when a period is chosen, the
points looked at are learned again against it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from aiops.detectors._kernels import floor_pass
from aiops.detectors._rolling import order_stats
from aiops.detectors.base import (
    FLOOR_LEARN_CAP,
    Detector,
    Param,
    float_array,
    float_value,
    scale_floor,
)
from aiops.detectors.mad import MAD_TO_STD
from aiops.errors import InvalidInput

__all__ = ["AutoDetector", "find_period"]

MAX_DECIDE_AFTER = 100_000
SEASONS = 3
"""A value is compared with the median of the values this many periods before it."""
MAX_LOOK_POINTS = 4_000
"""The choice waits at most this many points for ``period_search_seconds`` of data (unless
``decide_after`` asks for more): what is looked at stays in the state until then."""
MAX_HISTORY = 200_000
"""At most this many points of history are kept for the period lookup (one period's worth)."""


def find_period(values: np.ndarray, min_autocorrelation: float) -> tuple[int, float]:
    """(lag in points, autocorrelation) of the strongest repeat of ``values``; lag 0 if none.

    The autocorrelation (by FFT) is searched after its first zero crossing up to half the
    length, and a peak at lag L is scaled by n / (n - L) (the biased estimator shrinks long
    lags), then placed at the lag within 3 of that peak whose overlapping stretches correlate
    best. Lags under 4 points are not periods.
    """
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    if n < 16:
        return 0, 0.0
    y = x - x.mean()
    power = float(np.dot(y, y))
    if not power > 0:
        return 0, 0.0
    spectrum = np.fft.rfft(y, 2 * n)
    acf = np.fft.irfft(spectrum * np.conj(spectrum))[:n] / power
    half = n // 2
    negative = np.flatnonzero(acf[:half] < 0)
    if not len(negative):
        return 0, 0.0
    start = max(int(negative[0]), 4)
    if half - start < 3:
        return 0, 0.0
    lags = np.arange(start, half)
    corrected = acf[start:half] * n / (n - lags)
    best = int(np.argmax(corrected))
    value = float(corrected[best])
    if value < min_autocorrelation:
        return 0, value
    # the FFT estimate finds the peak; within 3 lags of it, the lag whose two overlapping
    # stretches correlate best places it (on a few periods the estimate is a step or two off)
    candidates = lags[max(best - 3, 0) : best + 4]
    with np.errstate(invalid="ignore", divide="ignore"):
        pearson = np.array([np.corrcoef(x[:-lag], x[lag:])[0, 1] for lag in candidates.tolist()])
    if np.isnan(pearson).all():
        return int(lags[best]), value
    return int(candidates[int(np.nanargmax(pearson))]), value


class AutoDetector(Detector):
    """Picks a model from the series itself. Params: window=120, k=5.0, decide_after=600,
    period_search_seconds=172800, min_autocorrelation=0.6, min_scale=0.0; spread_floor=0 (and
    the shared calibration params)."""

    kind = "auto"
    version = 1
    uses_time = True
    # its residuals are taken after the period is removed, where the raw series' typical step
    # (a daily cycle's ramps) overstates the noise: only the resolution and level floors apply
    COMMON_DEFAULTS = {"spread_floor": 0.0}
    PARAMS = (
        Param(
            "window",
            int,
            120,
            "an integer in [8, 100000] (points of the rolling median and MAD)",
            lambda v: 8 <= v <= 100_000,
        ),
        Param("k", float, 5.0, "a number > 0 (robust standard deviations)", lambda v: v > 0),
        Param(
            "decide_after",
            int,
            600,
            f"an integer in [16, {MAX_DECIDE_AFTER}] (points looked at, at least, before choosing)",
            lambda v: 16 <= v <= MAX_DECIDE_AFTER,
        ),
        Param(
            "period_search_seconds",
            int,
            2 * 86_400,
            "an integer in [0, 31622400] (the choice also waits until the points seen span "
            f"this long, so a daily cycle is seen twice, or until {MAX_LOOK_POINTS} points)",
            lambda v: 0 <= v <= 31_622_400,
        ),
        Param(
            "min_autocorrelation",
            float,
            0.6,
            "a number in (0, 1] (how strongly a series must repeat to be seasonal)",
            lambda v: 0 < v <= 1,
        ),
        Param("min_scale", float, 0.0, "a number >= 0", lambda v: v >= 0),
    )

    def _reset(self) -> None:
        self._buf_t = np.empty(0, dtype=np.int64)
        self._buf_x = np.empty(0)
        self._choice: dict[str, Any] | None = None
        self._period_ns = 0
        self._tol_ns = 0
        self._hist_t = np.empty(0, dtype=np.int64)
        self._hist_x = np.empty(0)
        self._tail_y = np.empty(0)
        self._tail_r = np.empty(0)

    # ---- the decision

    def _decide(self) -> None:
        t, x = self._buf_t, self._buf_x
        steps = np.diff(t)
        step = int(np.median(steps)) if len(steps) else 0
        regular = bool(len(steps)) and float(np.mean(np.abs(steps - step) <= step / 10)) >= 0.9
        lag, acf = find_period(x, self.params["min_autocorrelation"]) if step > 0 else (0, 0.0)
        if lag and not regular:
            reason_period = (
                f"a repeat every {lag} points (autocorrelation {acf:.2f}) was found, but the "
                "sampling is irregular, so it is not used"
            )
            lag = 0
        elif lag:
            reason_period = (
                f"the series repeats every {_duration(lag * step)} (autocorrelation {acf:.2f} "
                f">= {self.params['min_autocorrelation']}), so each value is compared with the "
                f"median of the values 1 to {SEASONS} periods earlier"
            )
        else:
            reason_period = (
                f"no period (best autocorrelation {acf:.2f} < "
                f"{self.params['min_autocorrelation']}), so values are compared with their "
                "recent past"
            )
        self._period_ns = lag * step
        self._tol_ns = step // 2
        # the floors as of the decision (the buffer is the stream so far): the detector's own
        # floor state is already past the end of the current call, which depends on the split
        floors = np.array([math.nan, math.inf, math.nan, math.nan])
        alpha = 1.0 / self.params["long_window"]
        floor_pass(x, floors, alpha, FLOOR_LEARN_CAP, 0.0, 0.0, 0.0, 0.0, np.empty(len(x)))
        resolution = None if math.isinf(floors[1]) else float(floors[1])
        level = None if math.isnan(floors[2]) else float(floors[2])
        unique = len(np.unique(x))
        self._choice = {
            "model": ("seasonal difference + rolling median/MAD" if lag else "rolling median/MAD"),
            "period_seconds": self._period_ns / 1e9 if lag else None,
            "period_points": lag or None,
            "autocorrelation": round(acf, 4),
            "sampling_step_seconds": step / 1e9,
            "regular_sampling": regular,
            "resolution": resolution,
            "typical_level": level,
            "distinct_values": unique,
            "decided_after_points": len(x),
            "reason": (
                f"{reason_period}; band: rolling median and MAD of {self.params['window']} "
                f"points, k = {self.params['k']}, scale floored at the value resolution "
                f"({_number(resolution)}), {self.params['level_floor']} x the typical level "
                f"({_number(level)}) and {self.params['spread_floor']} x the typical step; "
                "score calibrated on the series' own history"
            ),
        }

    def describe(self) -> dict[str, Any]:
        if self._choice is None:
            return {
                "kind": self.kind,
                "decided": False,
                "model": "rolling median/MAD",
                "reason": (
                    f"looking at the series for a period: {len(self._buf_x)} points seen (at "
                    f"least {self.params['decide_after']}, spanning "
                    f"{_duration(self.params['period_search_seconds'] * 10**9)} or "
                    f"{max(self.params['decide_after'], MAX_LOOK_POINTS)} points); meanwhile "
                    "values are compared with their recent past"
                ),
            }
        return {"kind": self.kind, "decided": True, **self._choice}

    # ---- scoring

    def _run(
        self, x: np.ndarray, ticks: np.ndarray | None, tick_ns: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        assert ticks is not None
        t = ticks.astype(np.int64) * tick_ns
        n = len(x)
        lo = np.full(n, np.nan)
        e = np.full(n, np.nan)
        up = np.full(n, np.nan)
        i = 0
        if self._choice is None:
            p = self.params
            first = self._buf_t[0] if len(self._buf_t) else t[0]
            counts = len(self._buf_x) + np.arange(1, n + 1)
            ready = (counts >= p["decide_after"]) & (
                (t - first >= p["period_search_seconds"] * 10**9)
                | (counts >= max(p["decide_after"], MAX_LOOK_POINTS))
            )
            i = int(ready.argmax()) + 1 if ready.any() else n
            # meanwhile, values are compared with their recent past (the model without period)
            lo[:i], e[:i], up[:i] = self._model(t[:i], x[:i], self._floor[:i])
            self._buf_t = np.concatenate([self._buf_t, t[:i]])
            self._buf_x = np.concatenate([self._buf_x, x[:i]])
            if ready.any():
                self._decide()
                if self._period_ns:  # learn what was looked at, against its period
                    self._tail_y = np.empty(0)
                    self._tail_r = np.empty(0)
                    self._model(self._buf_t, self._buf_x, None)
                self._buf_t = np.empty(0, dtype=np.int64)
                self._buf_x = np.empty(0)
        if i < n:
            lo[i:], e[i:], up[i:] = self._model(t[i:], x[i:], self._floor[i:])
        return lo, e, up

    def _model(
        self, t: np.ndarray, x: np.ndarray, floor: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = len(x)
        if self._period_ns:
            base = self._seasonal_base(t, x)
            ok = ~np.isnan(base)
            y = (x - base)[ok]
        else:
            base = np.zeros(n)
            ok = np.ones(n, dtype=bool)
            y = x
        w = self.params["window"]
        minp = max(8, w // 4)
        n0 = len(self._tail_y)
        ys = np.concatenate([self._tail_y, y])
        big = len(ys)
        (m,) = order_stats(ys, n0, big, w, (0.5,), minp, fast_from=w)
        absr = np.concatenate([self._tail_r, np.abs(y - m)])
        valid = np.flatnonzero(~np.isnan(absr))
        r_from = int(valid[0]) if len(valid) else big
        (mad,) = order_stats(absr, n0, big, w, (0.5,), minp, fast_from=r_from + w)
        self._tail_y = ys[-w:].copy()
        self._tail_r = absr[-w:].copy()
        lo = np.full(n, np.nan)
        e = np.full(n, np.nan)
        up = np.full(n, np.nan)
        if floor is None:
            return lo, e, up
        expected = base[ok] + m
        mad *= MAD_TO_STD
        half = scale_floor(mad, expected, floor[ok].copy())
        half *= self.params["k"]
        half[np.isnan(m)] = np.nan
        e[ok] = np.where(np.isnan(half), np.nan, expected)
        lo[ok] = e[ok] - half
        up[ok] = e[ok] + half
        return lo, e, up

    def _seasonal_base(self, t: np.ndarray, x: np.ndarray) -> np.ndarray:
        """The median of the values 1, 2 and 3 periods before each point (nearest sample
        within half a step; those that exist): one odd period (an incident, a holiday) is not
        echoed a period later."""
        ht = np.concatenate([self._hist_t, t])
        hx = np.concatenate([self._hist_x, x])
        refs = np.empty((SEASONS, len(t)))
        for k in range(SEASONS):
            target = t - (k + 1) * self._period_ns
            j = np.searchsorted(ht, target, side="left")
            # nearest of ht[j - 1] and ht[j] (both strictly before t since the period is > 0)
            jl = np.clip(j - 1, 0, len(ht) - 1)
            jr = np.clip(j, 0, len(ht) - 1)
            dl = np.abs(ht[jl] - target)
            dr = np.abs(ht[jr] - target)
            pick = np.where(dr < dl, jr, jl)
            dist = np.minimum(dl, dr)
            refs[k] = np.where(dist <= self._tol_ns, hx[pick], np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all missing: NaN, not scored
            base = np.nanmedian(refs, axis=0) if SEASONS > 1 else refs[0]
        keep = ht > t[-1] - SEASONS * self._period_ns - self._tol_ns - 1
        start = max(int(np.argmax(keep)) if keep.any() else len(ht), len(ht) - MAX_HISTORY)
        self._hist_t = ht[start:].copy()
        self._hist_x = hx[start:].copy()
        return base

    # ---- state

    def _learned(self) -> dict[str, Any]:
        return {
            "buffer_ns": self._buf_t.tolist(),
            "buffer": self._buf_x,
            "choice": self._choice,
            "period_ns": self._period_ns,
            "tolerance_ns": self._tol_ns,
            "history_ns": self._hist_t.tolist(),
            "history": self._hist_x,
            "tail": self._tail_y,
            "abs_residuals": self._tail_r,
        }

    def _restore(self, learned: Mapping[str, Any]) -> None:
        def ints(name: str, limit: int) -> np.ndarray:
            value = learned.get(name, [])
            if (
                not isinstance(value, list)
                or len(value) > limit
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            ):
                raise InvalidInput(
                    f"detector state: learned.{name} must be a list of at most {limit} integers",
                    field=f"state.learned.{name}",
                )
            return np.array(value, dtype=np.int64)

        p = self.params
        most = max(p["decide_after"], MAX_LOOK_POINTS)
        self._buf_t = ints("buffer_ns", most)
        self._buf_x = float_array(learned.get("buffer", []), "learned.buffer", most)
        self._hist_t = ints("history_ns", MAX_HISTORY)
        self._hist_x = float_array(learned.get("history", []), "learned.history", MAX_HISTORY)
        self._tail_y = float_array(learned.get("tail", []), "learned.tail", p["window"])
        self._tail_r = float_array(
            learned.get("abs_residuals", []), "learned.abs_residuals", p["window"]
        )
        if len(self._buf_t) != len(self._buf_x) or len(self._hist_t) != len(self._hist_x):
            raise InvalidInput(
                "detector state: learned buffer/history times and values differ in length",
                field="state.learned",
            )
        if len(self._tail_y) != len(self._tail_r) or np.isnan(self._tail_y).any():
            raise InvalidInput(
                "detector state: learned.tail must hold numbers, as many as abs_residuals",
                field="state.learned.tail",
            )
        choice = learned.get("choice")
        if choice is not None and not isinstance(choice, Mapping):
            raise InvalidInput(
                "detector state: learned.choice must be a dict or null",
                field="state.learned.choice",
            )
        self._choice = None if choice is None else dict(choice)
        period = float_value(learned.get("period_ns", 0), "learned.period_ns")
        tol = float_value(learned.get("tolerance_ns", 0), "learned.tolerance_ns")
        if not (period >= 0 and tol >= 0):
            raise InvalidInput(
                "detector state: learned.period_ns and tolerance_ns must be >= 0",
                field="state.learned.period_ns",
            )
        self._period_ns = int(period)
        self._tol_ns = int(tol)


def _duration(ns: int) -> str:
    seconds = ns / 1e9
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{seconds:g} s"


def _number(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.4g}"
