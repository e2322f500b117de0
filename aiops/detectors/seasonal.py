"""``seasonal``: a daily (or weekly) profile of robust location and scale per time bucket.

The period (a UTC day, or a week starting Monday 00:00 UTC) is cut into buckets of
``bucket_minutes``. Each bucket ``b`` keeps a location ``L[b]`` and a scale ``S[b]`` (mean
absolute deviation of its points from ``L[b]``). A point in bucket ``b`` is scored against the
profile learned from *earlier periods*: ``expected = L[b]``, band
``L[b] ± k * max(1.2533 * S'[b], min_scale)`` where ``S'[b]`` averages ``S`` over the buckets
within ``pool`` of ``b`` (a scale from a few visits is noisy; neighbouring times of day have
similar noise) and 1.2533 turns a mean absolute deviation into a Gaussian standard deviation.

Learning: the points of one visit of a bucket (one bucket of one period), clipped to their
band, are averaged (mean and mean ``|c - L[b]|``); when the period ends, every bucket visited
moves towards its visit averages with weight ``max(alpha, 1 / visits)`` (a plain average while
young, exponential forgetting after). The profile is frozen within a period, so scoring one
period is a table lookup, fully vectorised; the loop is per period (a few hundred per year).
The open period's partial sums are part of the state, so pieces and one call agree.

Warm-up is per bucket: a bucket scores 0 until it has ``min_periods`` learned visits (the first
visit sets ``L``, the second ``S``). Periods and buckets follow the wall clock of ``timezone``
(default UTC): traffic that follows office hours in Europe/Paris keeps its profile across DST
changes. On the night the clocks go back, the repeated hour folds into the bucket where the
first pass ended; on the night they go forward, the skipped hour has no points.
"""

from __future__ import annotations

import itertools
import math
import zoneinfo
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from aiops.detectors.base import Detector, Param, float_array, scale_floor
from aiops.errors import InvalidInput

__all__ = ["SeasonalDetector"]

MEAN_ABS_DEV_TO_STD = math.sqrt(math.pi / 2)
_DAY_NS = 86_400 * 10**9
_PERIODS = {"day": (_DAY_NS, 0), "week": (7 * _DAY_NS, 4 * _DAY_NS)}  # 1970-01-05 was a Monday


def _is_timezone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _wall_clock(ticks: np.ndarray, tick_ns: int, tz: str) -> np.ndarray:
    """UTC ticks as ticks of ``tz``'s wall clock, kept non-decreasing (the hour repeated when
    clocks go back folds into the bucket where the first pass ended)."""
    if tz == "UTC":
        return ticks
    utc = pd.DatetimeIndex((ticks * tick_ns).view("datetime64[ns]"), tz="UTC")
    wall = utc.tz_convert(tz).tz_localize(None).asi8 // tick_ns
    return np.maximum.accumulate(wall)


class SeasonalDetector(Detector):
    """Seasonal profile. Params: period="day", bucket_minutes=15, alpha=0.2, min_periods=3,
    pool=1, k=5.0, min_scale=0.0, timezone="UTC"."""

    kind = "seasonal"
    version = 1
    PARAMS = (
        Param("period", str, "day", "'day' or 'week'", lambda v: v in _PERIODS),
        Param(
            "bucket_minutes",
            int,
            15,
            "an integer in [1, 1440] that divides 1440 (a day)",
            lambda v: 1 <= v <= 1440 and 1440 % v == 0,
        ),
        Param(
            "alpha",
            float,
            0.2,
            "a number in (0, 1] (weight of the newest period)",
            lambda v: 0 < v <= 1,
        ),
        Param(
            "min_periods",
            int,
            3,
            "an integer >= 2 (learned visits per bucket before scoring)",
            lambda v: v >= 2,
        ),
        Param(
            "pool",
            int,
            1,
            "an integer in [0, 24] (neighbour buckets on each side sharing a scale)",
            lambda v: 0 <= v <= 24,
        ),
        Param("k", float, 5.0, "a number > 0 (standard deviations)", lambda v: v > 0),
        Param("min_scale", float, 0.0, "a number >= 0", lambda v: v >= 0),
        Param(
            "timezone", str, "UTC", "an IANA time zone name such as 'Europe/Paris'", _is_timezone
        ),
    )

    @property
    def n_buckets(self) -> int:
        return _PERIODS[self.params["period"]][0] // (self.params["bucket_minutes"] * 60 * 10**9)

    def _reset(self) -> None:
        nb = self.n_buckets
        self._loc = np.full(nb, np.nan)
        self._scale = np.full(nb, np.nan)
        self._visits = np.zeros(nb, dtype=np.int64)
        self._period: int | None = None
        self._count = np.zeros(nb, dtype=np.int64)
        self._sum = np.zeros(nb)
        self._absdev = np.zeros(nb)

    def _pooled_scale(self) -> np.ndarray:
        """Per bucket: the mean of the scales of the buckets within ``pool`` on each side
        (circular; unknown ones skipped), as a standard deviation; NaN where its own is unknown."""
        scale = self._scale
        pool = self.params["pool"]
        if pool:
            known = ~np.isnan(scale)
            total = np.zeros_like(scale)
            count = np.zeros_like(scale)
            for shift in range(-pool, pool + 1):
                total += np.roll(np.where(known, scale, 0.0), shift)
                count += np.roll(known, shift)
            scale = np.where(known, total / np.maximum(count, 1), np.nan)
        return scale * MEAN_ABS_DEV_TO_STD

    def _close_period(self) -> None:
        """The open period ended: every bucket visited in it learns its visit averages."""
        seen = np.flatnonzero(self._count)
        if len(seen):
            cnt = self._count[seen]
            mean = self._sum[seen] / cnt
            dev = self._absdev[seen] / cnt
            visits = self._visits[seen]
            loc = self._loc[seen]
            scale = self._scale[seen]
            alpha = self.params["alpha"]
            rate = np.maximum(alpha, 1.0 / (visits + 1))
            new_loc = np.where(visits == 0, mean, loc + rate * (mean - loc))
            rate_s = np.maximum(alpha, 1.0 / np.maximum(visits, 1))
            new_scale = np.where(
                visits == 0, np.nan, np.where(np.isnan(scale), dev, scale + rate_s * (dev - scale))
            )
            self._loc[seen] = new_loc
            self._scale[seen] = new_scale
            self._visits[seen] = visits + 1
        self._count[:] = 0
        self._sum[:] = 0.0
        self._absdev[:] = 0.0

    uses_time = True

    def _run(
        self, x: np.ndarray, ticks: np.ndarray | None, tick_ns: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        assert ticks is not None
        p = self.params
        ticks = _wall_clock(ticks, tick_ns, p["timezone"])
        period_ns, offset_ns = _PERIODS[p["period"]]
        # in the index's own unit (s/ms/us/ns all divide a minute): no conversion of the array
        period, offset = period_ns // tick_ns, offset_ns // tick_ns
        bucket = p["bucket_minutes"] * 60 * 10**9 // tick_ns
        nb = self.n_buckets
        n = len(x)
        lo = np.empty(n)
        e = np.empty(n)
        up = np.empty(n)
        first = (int(ticks[0]) - offset) // period
        last = (int(ticks[-1]) - offset) // period
        # where each period starts; empty periods (gaps) give empty slices
        starts = np.searchsorted(ticks, np.arange(first + 1, last + 1) * period + offset)
        bounds = [0, *starts.tolist(), n]
        pooled: np.ndarray | None = None
        for number, (s, t) in enumerate(itertools.pairwise(bounds), start=first):
            if s == t:
                continue
            if self._period is not None and number != self._period:
                self._close_period()
                pooled = None
            self._period = number
            if pooled is None:
                pooled = self._pooled_scale()
            b = (ticks[s:t] - (number * period + offset)) // bucket
            raw = x[s:t]
            loc = self._loc[b]
            half = scale_floor(pooled[b], loc, self._floor[s:t].copy())
            half *= p["k"]
            half[self._visits[b] < p["min_periods"]] = np.nan
            expected = np.where(np.isnan(half), np.nan, loc)
            low, high = expected - half, expected + half
            e[s:t], lo[s:t], up[s:t] = expected, low, high
            c = np.fmin(np.fmax(raw, low), high)  # fmax/fmin ignore the NaN band of warm-up
            self._count += np.bincount(b, minlength=nb)
            self._sum += np.bincount(b, weights=c, minlength=nb)
            dev = np.abs(c - loc)
            dev[np.isnan(dev)] = 0.0  # first visit of a bucket: no location yet, unused
            self._absdev += np.bincount(b, weights=dev, minlength=nb)
        return lo, e, up

    def _learned(self) -> dict[str, Any]:
        open_ = np.flatnonzero(self._count)
        return {
            "location": self._loc,
            "scale": self._scale,
            "visits": self._visits,
            "period": self._period,
            "open": {
                "bucket": open_,
                "count": self._count[open_],
                "sum": self._sum[open_],
                "abs_dev": self._absdev[open_],
            },
        }

    def _restore(self, learned: Mapping[str, Any]) -> None:
        nb = self.n_buckets

        def bad(name: str, why: str) -> InvalidInput:
            return InvalidInput(
                f"detector state: learned.{name} {why}", field=f"state.learned.{name}"
            )

        loc = float_array(learned.get("location"), "learned.location", nb)
        scale = float_array(learned.get("scale"), "learned.scale", nb)
        visits = learned.get("visits")
        if len(loc) != nb or len(scale) != nb or not isinstance(visits, list) or len(visits) != nb:
            raise bad("location", f"scale and visits must each have {nb} entries (one per bucket)")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in visits):
            raise bad("visits", "must be counts")
        period = learned.get("period")
        if period is not None and (isinstance(period, bool) or not isinstance(period, int)):
            raise bad("period", "must be an integer or null")
        opened = learned.get("open")
        if not isinstance(opened, Mapping):
            raise bad("open", "must be a dict")
        idx = opened.get("bucket")
        cnt = opened.get("count")
        if not isinstance(idx, list) or not isinstance(cnt, list) or len(idx) != len(cnt):
            raise bad("open", "must hold bucket and count lists of equal length")
        if not all(isinstance(i, int) and 0 <= i < nb for i in idx) or not all(
            isinstance(c, int) and c > 0 for c in cnt
        ):
            raise bad("open", "holds a bucket out of range or a count that is not positive")
        sums = float_array(opened.get("sum"), "learned.open.sum", nb)
        devs = float_array(opened.get("abs_dev"), "learned.open.abs_dev", nb)
        if len(sums) != len(idx) or len(devs) != len(idx):
            raise bad("open", "sum and abs_dev must be as long as bucket")
        self._reset()
        self._loc, self._scale = loc, scale
        self._visits = np.array(visits, dtype=np.int64)
        self._period = period
        self._count[idx] = cnt
        self._sum[idx] = sums
        self._absdev[idx] = devs
