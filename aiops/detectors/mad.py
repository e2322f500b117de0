"""``mad``: robust rolling median and median absolute deviation.

``expected`` is the median of the last ``window`` learned values. The scale is
``1.4826 * median(|r|)`` over the last ``window`` residuals ``r = learned value - its own
expected``: the median absolute deviation of the one-step-ahead errors, which for a steady
series is the textbook MAD of the window (1.4826 makes it a standard deviation for Gaussian
noise) and on a trend also covers the median's lag. The band is ``median ± k * scale``.

Why residuals rather than ``median(|c - median_t|)`` per window: the latter is not a rolling
statistic (every window re-centres), so it costs O(window) per point; this one is two rolling
medians, O(log window) per point.

Robust twice: a median ignores a few spikes even before clipping, and points outside the band
are learned clipped. Warm-up: ``min_periods`` points for the median, then ``min_periods``
residuals for the scale (``2 * min_periods`` points in all).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from aiops.detectors._rolling import (
    RollingDetector,
    order_stats,
    resolve_min_periods,
    window_params,
)
from aiops.detectors.base import Param, float_array, scale_floor
from aiops.errors import InvalidInput

__all__ = ["MadDetector"]

MAD_TO_STD = 1.482602218505602  # 1 / Phi^-1(3/4)


class MadDetector(RollingDetector):
    """Rolling median / MAD. Params: window=60, min_periods=window//2, k=5.0, min_scale=0.0."""

    kind = "mad"
    version = 1
    reach_windows = 2  # a clip moves medians for one window, and those residuals for another
    PARAMS = (
        *window_params(60, 1),
        Param("k", float, 5.0, "a number > 0 (robust standard deviations)", lambda v: v > 0),
        Param("min_scale", float, 0.0, "a number >= 0", lambda v: v >= 0),
    )

    @classmethod
    def _resolve(cls, params: dict[str, Any]) -> None:
        resolve_min_periods(cls, params, 1)

    def _reset(self) -> None:
        super()._reset()
        self._rtail = np.empty(0)  # |residual| of each tail point (NaN before the first median)

    def _start(self, x: np.ndarray) -> None:
        super()._start(x)
        self._absr = np.concatenate([self._rtail, np.empty(len(x))])
        valid = np.flatnonzero(~np.isnan(self._rtail))
        # residuals exist from the first point with a median on; NaN only leads the array
        self._r_from = (
            int(valid[0]) if len(valid) else max(self.params["min_periods"], len(self._rtail))
        )

    def _compute(self, a: int, b: int) -> None:
        # _e holds the median even where the scale is still warming up (_run NaNs it at the end)
        p = self.params
        w, minp = p["window"], p["min_periods"]
        (m,) = order_stats(self._c, a, b, w, (0.5,), minp, fast_from=w)
        self._e[a:b] = m
        np.abs(np.subtract(self._c[a:b], m), out=self._absr[a:b])
        (mad,) = order_stats(self._absr, a, b, w, (0.5,), minp, fast_from=self._r_from + w)
        mad *= MAD_TO_STD
        half = scale_floor(mad, m, self._mins(a, b))
        half *= p["k"]
        self._lo[a:b] = m - half
        self._up[a:b] = m + half

    def _clip(self, g: int) -> bool:
        raw = self._c[g]
        super()._clip(g)
        clipped = self._c[g]
        self._absr[g] = new = abs(clipped - self._e[g])
        # Invisible when the clipped value stays on the same side of every later median and
        # |residual| whose window holds it: an order statistic does not move when an element
        # beyond it moves but stays beyond it. Then no band after g changes.
        w = self.params["window"]
        if g < max(w, self._r_from + w):
            return True  # partial windows while young: just recompute
        end = min(g + w, len(self._c) - 1) + 1
        m = self._e[g + 1 : end]
        half = self._up[g + 1 : end] - m
        if len(m) == 0:
            return False
        if np.isnan(half).any():
            return True
        same_side = clipped >= m.max() if raw > clipped else clipped <= m.min()
        # median |r| of window t <= half_t / (k * 1.4826): the band may be floored
        bound = half.max() / (self.params["k"] * MAD_TO_STD) * (1 + 1e-9)
        return not (same_side and new >= bound)

    def _finish(self) -> None:
        super()._finish()
        self._rtail = self._absr[-self.params["window"] :].copy()
        warm = np.isnan(self._lo)
        if warm.any():
            self._e[warm] = np.nan
        del self._absr

    def _learned(self) -> dict[str, Any]:
        return {"tail": self._tail, "abs_residuals": self._rtail}

    def _restore(self, learned: Mapping[str, Any]) -> None:
        super()._restore(learned)
        r = float_array(
            learned.get("abs_residuals", []), "learned.abs_residuals", self.params["window"]
        )
        if len(r) != len(self._tail):
            raise InvalidInput(
                "detector state: learned.abs_residuals must be as long as learned.tail",
                field="state.learned.abs_residuals",
            )
        valid = ~np.isnan(r)
        if (valid.any() and not valid[int(valid.argmax()) :].all()) or (r[valid] < 0).any():
            raise InvalidInput(
                "detector state: learned.abs_residuals must be >= 0, with null only at the start",
                field="state.learned.abs_residuals",
            )
        self._rtail = r
