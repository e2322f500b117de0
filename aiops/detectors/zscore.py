"""``zscore``: rolling mean and standard deviation of the last ``window`` learned points.

Band: ``mean ± k * max(std, min_scale)`` over the previous ``window`` learned values (the point
itself excluded). Score ``|x - mean| / (k * std)``: 1 at the band edge, so ``k`` is the number
of standard deviations that counts as anomalous.

Anomalies do not poison: a point outside its band is learned clipped to the band edge. A
level shift is therefore flagged, then absorbed as clipped points widen and move the window
(about ``window / 2`` points for a large shift; see docs/detectors.md).
"""

from __future__ import annotations

from typing import Any

from aiops.detectors._rolling import RollingDetector, moments, resolve_min_periods, window_params
from aiops.detectors.base import Param, scale_floor

__all__ = ["ZScoreDetector"]


class ZScoreDetector(RollingDetector):
    """Rolling z-score. Params: window=60, min_periods=window//2, k=5.0, min_scale=0.0."""

    kind = "zscore"
    version = 1
    PARAMS = (
        *window_params(60, 2),
        Param("k", float, 5.0, "a number > 0 (standard deviations)", lambda v: v > 0),
        Param("min_scale", float, 0.0, "a number >= 0", lambda v: v >= 0),
    )

    @classmethod
    def _resolve(cls, params: dict[str, Any]) -> None:
        resolve_min_periods(cls, params, 2)

    def _compute(self, a: int, b: int) -> None:
        p = self.params
        w = p["window"]
        mean, std = moments(self._c, a, b, w, p["min_periods"], fast_from=w)
        half = scale_floor(std, mean, self._mins(a, b))
        half *= p["k"]
        self._e[a:b] = mean
        self._lo[a:b] = mean - half
        self._up[a:b] = mean + half
