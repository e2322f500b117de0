"""``quantile``: a band from rolling quantiles of the last ``window`` learned points.

``expected`` is the window median ``m``; each side of the band reaches past its quantile by
``margin`` times that side's own spread::

    upper = q(q_high) + margin * (q(q_high) - m)      lower = q(q_low) - margin * (m - q(q_low))

(spreads floored at ``min_scale``). Quantiles are order statistics (rank
``round(q * (n - 1))``), no interpolation. Score: distance from the median in units of the
half-band on that side, so a skewed metric (latency) gets a long upper and a short lower side.

Distribution-free: no normality assumption. With the defaults (60 points, 5%/95%, margin 2.5)
a Gaussian series is flagged beyond about 5.3 standard deviations (on average: quantiles of
60 points vary). Defaults tuned on the synthetic labelled benchmark (docs/evaluation.md).
"""

from __future__ import annotations

from typing import Any

from aiops.detectors._rolling import (
    RollingDetector,
    order_stats,
    rank_index,
    resolve_min_periods,
    window_params,
)
from aiops.detectors.base import Param, scale_floor

__all__ = ["QuantileDetector"]


class QuantileDetector(RollingDetector):
    """Rolling quantile band. Params: window=60, min_periods=window//2, q_low=0.05,
    q_high=0.95, margin=2.5, min_scale=0.0."""

    kind = "quantile"
    version = 1
    PARAMS = (
        *window_params(60, 1),
        Param("q_low", float, 0.05, "a number in [0, 0.5)", lambda v: 0.0 <= v < 0.5),
        Param("q_high", float, 0.95, "a number in (0.5, 1]", lambda v: 0.5 < v <= 1.0),
        Param(
            "margin",
            float,
            2.5,
            "a number >= 0 (multiple of each side's quantile-to-median spread)",
            lambda v: v >= 0,
        ),
        Param("min_scale", float, 0.0, "a number >= 0", lambda v: v >= 0),
    )

    @classmethod
    def _resolve(cls, params: dict[str, Any]) -> None:
        resolve_min_periods(cls, params, 1)

    def _compute(self, a: int, b: int) -> None:
        p = self.params
        w = p["window"]
        low, mid, high = order_stats(
            self._c, a, b, w, (p["q_low"], 0.5, p["q_high"]), p["min_periods"], fast_from=w
        )
        margin, min_scale = p["margin"], self._mins(a, b)
        above = scale_floor(high - mid, mid, min_scale)
        above *= margin
        above += high
        below = scale_floor(mid - low, mid, min_scale)
        below *= -margin
        below += low
        self._e[a:b] = mid
        self._lo[a:b] = below
        self._up[a:b] = above

    def _clip(self, g: int) -> bool:
        raw = self._c[g]
        super()._clip(g)
        clipped = self._c[g]
        # Invisible when raw and clipped values are both the extreme of every window holding
        # g, and no quantile used is that extreme: all order statistics below it stay put.
        w = self.params["window"]
        if g < w:
            return True  # partial windows while young: just recompute
        c = self._c
        end = min(g + w, len(c))
        if end == g + 1:
            return False
        if raw > clipped:
            others = max(c[g + 1 - w : g].max(), c[g + 1 : end].max())
            return not (clipped >= others and int(rank_index(self.params["q_high"], w)) < w - 1)
        others = min(c[g + 1 - w : g].min(), c[g + 1 : end].min())
        return not (clipped <= others and int(rank_index(self.params["q_low"], w)) > 0)
