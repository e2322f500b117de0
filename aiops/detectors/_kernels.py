"""The sequential recursions every calibrated kind shares, compiled with numba.

The scale floors and the calibration are recursions over the points in order (a slow average
that learns a glitch only up to a cap; a long-run mean and variance of the band distances).
As numpy they cost several passes and a dozen temporaries per point; as one compiled loop they
cost a few nanoseconds per point, and they are exact: the same numbers whatever the split into
calls (the state in and out is a handful of floats). ``cache=True`` keeps the compiled code
beside this module, so only the first process after an install pays the compile (about a
second).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["calibration_pass", "floor_pass"]


@njit(cache=True, nogil=True)
def decimal_resolution(v: float) -> float:  # pragma: no cover - compiled
    """The last decimal place ``v`` is written to (1 for 7 or 1000, 0.01 for 0.25), from 1 to
    1e-6; 0 for 0, or when ``v`` has more decimals than that (a measured float)."""
    a = abs(v)
    if a == 0.0 or a != a or a == math.inf:
        return 0.0
    scale = 1.0
    for _ in range(7):
        s = a * scale
        if abs(s - round(s)) <= 1e-9 * max(s, 1.0):
            return 1.0 / scale
        scale *= 10.0
    return 0.0


@njit(cache=True, nogil=True)
def floor_pass(
    x: np.ndarray,
    state: np.ndarray,
    alpha: float,
    cap: float,
    min_scale: float,
    resolution_floor: float,
    level_floor: float,
    spread_floor: float,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Scale floor before each point of ``x`` into ``out``; ``state`` = [previous value,
    resolution, level, spread] (NaN: unknown; resolution inf: none yet), updated in place."""
    prev, res, lvl, sp = state[0], state[1], state[2], state[3]
    decay = 1.0 - alpha
    for i in range(len(x)):
        xi = x[i]
        f = min_scale
        # the resolution: the smallest step seen; before any step, how the value is written
        # (a counter flat at 0 whose first 1 is one step, not an infinitely unlikely value)
        r = res if res < math.inf else decimal_resolution(xi)
        if resolution_floor * r > f:
            f = resolution_floor * r
        if lvl == lvl and level_floor * lvl > f:
            f = level_floor * lvl
        if sp == sp and spread_floor * sp > f:
            f = spread_floor * sp
        out[i] = f
        a = abs(xi)
        if lvl != lvl:
            lvl = a
        else:
            if lvl > 0.0 and a > cap * lvl:
                a = cap * lvl  # a glitch is learned at most cap times the average
            lvl = decay * lvl + alpha * a
        if prev == prev:
            step = abs(xi - prev)
            if 0.0 < step < res:
                res = step
            if sp != sp:
                sp = step
            else:
                if sp > 0.0 and step > cap * sp:
                    step = cap * sp
                sp = decay * sp + alpha * step
        prev = xi
    state[0], state[1], state[2], state[3] = prev, res, lvl, sp


@njit(cache=True, nogil=True)
def calibration_pass(
    z: np.ndarray,
    ring: np.ndarray,
    state: np.ndarray,
    alpha: float,
    cap: float,
    spread_floor: float,
    warmup: float,
    dead: float,
    out_t: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Standardised recent band distance of each point into ``out_t`` (NaN while warming up).

    ``ring`` holds the last ``short_window`` scaled distances (oldest first, NaN where none
    yet); ``state`` = [long-run mean, long-run variance, count] (mean NaN: none yet). Both are
    updated in place. ``a = min(z, cap) / cap``; ``t = (mean of the ring - long-run mean
    before the point) / max(long-run spread before it, spread_floor)``. The long-run mean and
    variance weigh each point ``max(alpha, 1 / (count + 1))``: plain averages for the first
    ``1 / alpha`` points, exponentially weighted after.
    """
    mean, var, count = state[0], state[1], state[2]
    w = len(ring)
    total = 0.0
    filled = 0
    for k in range(w):
        if ring[k] == ring[k]:
            total += ring[k]
            filled += 1
    head = 0  # position of the oldest value
    for i in range(len(z)):
        a = z[i]
        if a > cap:
            a = cap
        a = (a - dead) / (cap - dead) if a > dead else 0.0
        old = ring[head]
        if old == old:
            total -= old
            filled -= 1
        ring[head] = a
        head += 1
        if head == w:
            head = 0
        total += a
        filled += 1
        if mean != mean:
            mean, var = a, 0.0
        if count >= warmup:
            spread = math.sqrt(var)
            if spread < spread_floor:
                spread = spread_floor
            out_t[i] = (total / filled - mean) / spread
        else:
            out_t[i] = math.nan
        # weight max(alpha, 1 / (count + 1)): a plain running mean and variance while young, so
        # the long-run estimates are not stuck near the first value with a variance near 0
        # (which alerted on clean noise for a few hundred points after the warm-up)
        wt = 1.0 / (count + 1.0)
        if wt < alpha:
            wt = alpha
        d = a - mean
        mean += wt * d
        var = (1.0 - wt) * (var + wt * d * d)
        count += 1.0
    # oldest first again, so the saved state does not depend on where the ring stopped
    if head:
        ring[:] = np.concatenate((ring[head:], ring[:head]))
    state[0], state[1], state[2] = mean, var, count
