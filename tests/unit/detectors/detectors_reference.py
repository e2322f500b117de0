"""Point-by-point reference implementations of the detector definitions (slow, obvious).

The vectorised detectors must give the same bands as these loops. Each returns a list of
``(lower, expected, upper)`` per point of ``x`` (finite values only, no missing handling).

``adapt_after`` (the bounded adaptation of :mod:`aiops.detectors.base`): a point outside its
band is learned clipped, unless it is more than the ``adapt_after``-th consecutive one outside;
then it is learned raw. ``None``: always clipped.
"""

from __future__ import annotations

import math

import numpy as np

REL = 1e-9


def _rank(q: float, n: int) -> int:
    return math.floor(q * (n - 1) + 0.5)


def _floor(scale: float, expected: float, min_scale: float) -> float:
    return max(scale, min_scale, REL * abs(expected))


def _clip(v: float, lo: float, up: float) -> float:
    if math.isnan(lo):
        return v
    return min(max(v, lo), up)


class _Learn:
    """What a point is learned as: clipped, or raw past ``adapt_after`` consecutive outside."""

    def __init__(self, adapt_after: int | None) -> None:
        self.adapt_after = adapt_after
        self.run = 0

    def __call__(self, v: float, lo: float, up: float) -> float:
        outside = not math.isnan(lo) and (v < lo or v > up)
        self.run = self.run + 1 if outside else 0
        if self.adapt_after is not None and self.run > self.adapt_after:
            return v
        return _clip(v, lo, up)


def zscore(x, window, min_periods, k, min_scale=0.0, adapt_after=None):
    learn = _Learn(adapt_after)
    c: list[float] = []
    out = []
    for v in x:
        win = c[-window:]
        if len(win) >= min_periods:
            m = float(np.mean(win))
            s = float(np.std(win, ddof=1))
            half = k * _floor(s, m, min_scale)
            band = (m - half, m, m + half)
        else:
            band = (math.nan, math.nan, math.nan)
        out.append(band)
        c.append(learn(v, band[0], band[2]))
    return out


def quantile(x, window, min_periods, q_low, q_high, margin, min_scale=0.0, adapt_after=None):
    learn = _Learn(adapt_after)
    c: list[float] = []
    out = []
    for v in x:
        win = sorted(c[-window:])
        n = len(win)
        if n >= min_periods:
            lo_q, mid, hi_q = win[_rank(q_low, n)], win[_rank(0.5, n)], win[_rank(q_high, n)]
            below = margin * _floor(mid - lo_q, mid, min_scale)
            above = margin * _floor(hi_q - mid, mid, min_scale)
            band = (lo_q - below, mid, hi_q + above)
        else:
            band = (math.nan, math.nan, math.nan)
        out.append(band)
        c.append(learn(v, band[0], band[2]))
    return out


def mad(x, window, min_periods, k, min_scale=0.0, adapt_after=None):
    learn = _Learn(adapt_after)
    c: list[float] = []
    r: list[float] = []
    out = []
    for v in x:
        win = sorted(c[-window:])
        m = win[_rank(0.5, len(win))] if len(win) >= min_periods else math.nan
        res = sorted(abs(e) for e in r[-window:] if not math.isnan(e))
        if not math.isnan(m) and len(res) >= min_periods:
            scale = 1.482602218505602 * res[_rank(0.5, len(res))]
            half = k * _floor(scale, m, min_scale)
            band = (m - half, m, m + half)
        else:
            band = (math.nan, math.nan, math.nan)
        out.append(band)
        ci = learn(v, band[0], band[2])
        c.append(ci)
        r.append(ci - m)
    return out


def ewma(x, alpha, min_periods, k, min_scale=0.0, adapt_after=None):
    learn = _Learn(adapt_after)
    m = v = math.nan
    n = 0
    out = []
    for xi in x:
        if n >= min_periods:
            half = k * _floor(math.sqrt(v), m, min_scale)
            band = (m - half, m, m + half)
        else:
            band = (math.nan, math.nan, math.nan)
        out.append(band)
        ci = learn(xi, band[0], band[2])
        if n == 0:
            m, v = ci, 0.0
        else:
            d = ci - m
            m = m + alpha * d
            v = (1 - alpha) * (v + alpha * d * d)
        n += 1
    return out


def seasonal(x, ns, period_ns, offset_ns, bucket_ns, alpha, min_periods, pool, k, min_scale=0.0):
    loc: dict[int, float] = {}
    scale: dict[int, float] = {}
    visits: dict[int, int] = {}
    pending: dict[int, list[float]] = {}  # bucket -> [count, sum, absdev]
    current = None
    out = []
    for xi, t in zip(x, ns, strict=True):
        rel = int(t) - offset_ns
        period, phase = divmod(rel, period_ns)
        b = phase // bucket_ns
        if current is not None and period != current:
            for bb, (cnt, sm, dev) in pending.items():
                nv = visits.get(bb, 0)
                mean, d = sm / cnt, dev / cnt
                if nv == 0:
                    loc[bb] = mean
                else:
                    loc[bb] += max(alpha, 1 / (nv + 1)) * (mean - loc[bb])
                    if bb not in scale:
                        scale[bb] = d
                    else:
                        scale[bb] += max(alpha, 1 / nv) * (d - scale[bb])
                visits[bb] = nv + 1
            pending = {}
        current = period
        if visits.get(b, 0) >= min_periods:
            e = loc[b]
            n_buckets = period_ns // bucket_ns
            near = [
                scale[(b + j) % n_buckets]
                for j in range(-pool, pool + 1)
                if (b + j) % n_buckets in scale
            ]
            half = k * _floor(math.sqrt(math.pi / 2) * (sum(near) / len(near)), e, min_scale)
            band = (e - half, e, e + half)
        else:
            band = (math.nan, math.nan, math.nan)
        out.append(band)
        ci = _clip(xi, band[0], band[2])
        acc = pending.setdefault(b, [0, 0.0, 0.0])
        acc[0] += 1
        acc[1] += ci
        acc[2] += abs(ci - loc[b]) if b in loc else 0.0
    return out
