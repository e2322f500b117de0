"""``ewma``: exponentially weighted mean and variance, learned online.

State: mean ``m``, variance ``v`` and a count; nothing else, so it is tiny and carries over
between runs unchanged. At each point, with the state from the points before it:
``expected = m``, band ``m ± k * max(sqrt(v), min_scale)``; then the point (clipped to the band
if it scored > 1) updates the state (West/Finch incremental form)::

    d = c - m;  m = alpha * c + (1 - alpha) * m;  v = (1 - alpha) * (v + alpha * d * d)

The first point sets ``m``; the next ``min_periods - 1`` update it unclipped and score 0
(warm-up; ``v`` starts at 0, so wait ~3 / alpha points).

Vectorised: between anomalies both recursions are linear filters (``scipy.signal.lfilter``
with the carried state as initial condition), run over segments that grow while no point is
flagged; at a flagged point the segment stops, the point is learned clipped, and a new
segment starts from the exact state. Same numbers as a plain loop.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.signal import lfilter

from aiops.detectors.base import Detector, Param, float_value, scale_floor
from aiops.errors import InvalidInput

__all__ = ["EwmaDetector"]

_MIN_SEGMENT = 64
_MAX_SEGMENT = 1 << 16


class EwmaDetector(Detector):
    """Online EWMA z-score. Params: alpha=0.05, min_periods=ceil(3/alpha), k=5.0, min_scale=0.0."""

    kind = "ewma"
    version = 1
    PARAMS = (
        Param(
            "alpha",
            float,
            0.05,
            "a number in (0, 1) (weight of the newest point)",
            lambda v: 0 < v < 1,
        ),
        Param(
            "min_periods",
            int,
            None,
            "null (ceil(3 / alpha)) or an integer >= 2",
            lambda v: v >= 2,
            optional=True,
        ),
        Param("k", float, 5.0, "a number > 0 (standard deviations)", lambda v: v > 0),
        Param("min_scale", float, 0.0, "a number >= 0", lambda v: v >= 0),
    )

    @classmethod
    def _resolve(cls, params: dict[str, Any]) -> None:
        if params["min_periods"] is None:
            params["min_periods"] = max(2, math.ceil(3.0 / params["alpha"]))

    def _reset(self) -> None:
        self._m = math.nan
        self._v = math.nan
        self._n = 0

    def _filter(self, c: np.ndarray, m: float, v: float) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance after each point of ``c`` from state ``(m, v)``, nothing clipped."""
        alpha = self.params["alpha"]
        decay = 1.0 - alpha
        means, _ = lfilter([alpha], [1.0, -decay], c, zi=[decay * m])
        d = np.empty_like(c)
        d[0] = c[0] - m
        np.subtract(c[1:], means[:-1], out=d[1:])
        d *= d
        variances, _ = lfilter([decay * alpha], [1.0, -decay], d, zi=[decay * v])
        return means, variances

    def _step(self, c: float) -> None:
        alpha = self.params["alpha"]
        decay = 1.0 - alpha
        d = c - self._m
        self._m = alpha * c + decay * self._m
        self._v = (decay * alpha) * (d * d) + decay * self._v
        self._n += 1

    def _run(
        self, x: np.ndarray, ticks: np.ndarray | None, tick_ns: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p = self.params
        n = len(x)
        lo = np.full(n, np.nan)
        e = np.full(n, np.nan)
        up = np.full(n, np.nan)
        i = 0
        if self._n == 0:
            self._m, self._v, self._n = float(x[0]), 0.0, 1
            i = 1
        if self._n < p["min_periods"] and i < n:  # warm-up: learn everything, score nothing
            j = min(n, i + p["min_periods"] - self._n)
            means, variances = self._filter(x[i:j], self._m, self._v)
            self._m, self._v, self._n = float(means[-1]), float(variances[-1]), self._n + (j - i)
            i = j
        seg = _MIN_SEGMENT
        while i < n:
            j = min(n, i + seg)
            means, variances = self._filter(x[i:j], self._m, self._v)
            mean = np.empty(j - i)
            var = np.empty(j - i)
            mean[0], var[0] = self._m, self._v
            mean[1:], var[1:] = means[:-1], variances[:-1]
            half = scale_floor(np.sqrt(var), mean, self._floor[i:j])
            half *= p["k"]
            low, high = mean - half, mean + half
            raw = x[i:j]
            out = (raw < low) | (raw > high)
            if out.any():
                g = int(out.argmax())
                e[i : i + g + 1] = mean[: g + 1]
                lo[i : i + g + 1] = low[: g + 1]
                up[i : i + g + 1] = high[: g + 1]
                if g:
                    self._m, self._v = float(means[g - 1]), float(variances[g - 1])
                    self._n += g
                self._out_run = self._out_run + 1 if g == 0 else 1
                if self._adapt(self._out_run):
                    self._step(float(raw[g]))  # a lasting change: learn the new level
                else:
                    self._step(min(max(float(raw[g]), float(low[g])), float(high[g])))
                i += g + 1
                seg = max(_MIN_SEGMENT, seg // 2)
            else:
                e[i:j], lo[i:j], up[i:j] = mean, low, high
                self._m, self._v = float(means[-1]), float(variances[-1])
                self._n += j - i
                self._out_run = 0
                i = j
                seg = min(_MAX_SEGMENT, seg * 2)
        return lo, e, up

    def _learned(self) -> dict[str, Any]:
        return {"mean": self._m, "var": self._v, "count": self._n}

    def _restore(self, learned: Mapping[str, Any]) -> None:
        count = learned.get("count", 0)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InvalidInput(
                "detector state: learned.count must be a count", field="state.learned.count"
            )
        m = float_value(learned.get("mean"), "learned.mean")
        v = float_value(learned.get("var"), "learned.var")
        if count and (math.isnan(m) or math.isnan(v) or v < 0):
            raise InvalidInput(
                "detector state: learned.mean and learned.var are required once count > 0",
                field="state.learned",
            )
        self._m, self._v, self._n = m, v, count
