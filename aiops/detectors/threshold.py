"""``threshold``: static bounds, no learning.

Band ``[lower, upper]`` (either may be null: one-sided, the open side is -inf / +inf).
``expected`` is the midpoint (two-sided) or the bound (one-sided). Score 0 inside the band;
outside, ``1 + excess / reference`` with ``reference`` the band width (two-sided), else
``|bound|``, else 1 -- so a value 10% of the width past a bound scores 1.1. No warm-up, no state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from aiops.detectors.base import MAX_SCORE, Detector, Param

__all__ = ["ThresholdDetector"]


class ThresholdDetector(Detector):
    """Static min/max. Params: lower=None, upper=None (at least one)."""

    kind = "threshold"
    version = 1
    calibrated = False
    PARAMS = (
        Param(
            "lower",
            float,
            None,
            "null or a finite number (values below it are anomalous)",
            optional=True,
        ),
        Param(
            "upper",
            float,
            None,
            "null or a finite number (values above it are anomalous)",
            optional=True,
        ),
    )

    @classmethod
    def _resolve(cls, params: dict[str, Any]) -> None:
        lower, upper = params["lower"], params["upper"]
        if lower is None and upper is None:
            raise cls._error(
                "upper", "set lower, upper or both", "a finite number for lower and/or upper"
            )
        if lower is not None and upper is not None and lower > upper:
            raise cls._error(
                "lower", f"lower ({lower}) must not exceed upper ({upper})", "lower <= upper"
            )

    def _bounds(self) -> tuple[float, float, float, float]:
        lower, upper = self.params["lower"], self.params["upper"]
        lo = -math.inf if lower is None else lower
        up = math.inf if upper is None else upper
        if lower is not None and upper is not None:
            mid = lower + (upper - lower) / 2
            ref = upper - lower
        else:
            mid = lower if lower is not None else upper
            ref = abs(mid)
        return lo, mid, up, (ref if ref > 0 else 1.0)

    def _reset(self) -> None:
        pass

    def _run(
        self, x: np.ndarray, ticks: np.ndarray | None, tick_ns: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lo, mid, up, _ = self._bounds()
        n = len(x)
        return np.full(n, lo), np.full(n, mid), np.full(n, up)

    def _score(
        self, x: np.ndarray, lower: np.ndarray, expected: np.ndarray, upper: np.ndarray
    ) -> np.ndarray:
        lo, _, up, ref = self._bounds()
        excess = np.maximum(lo - x, 0.0)
        np.maximum(excess, x - up, out=excess)
        score = 1.0 + excess / ref
        score[excess <= 0] = 0.0  # inside (x - up and lo - x both <= 0)
        inside = (x >= lo) & (x <= up)
        score[inside] = 0.0
        score[~inside & (score <= 1.0)] = float(np.nextafter(1.0, 2.0))
        return np.minimum(score, MAX_SCORE)

    def _learned(self) -> dict[str, Any]:
        return {}

    def _restore(self, learned: Mapping[str, Any]) -> None:
        pass
