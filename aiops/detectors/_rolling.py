"""The engine shared by the window models (``zscore``, ``mad``, ``quantile``).

Definition (exact, sequential). Let ``c`` be the *learned* values: ``c[t] = x[t]`` when ``x[t]``
scored <= 1 (or during warm-up), else ``x[t]`` clipped to ``[lower[t], upper[t]]``. The band
at ``t`` is a statistic of ``c[t-window:t]`` (the point itself excluded). That is a recursion:
whether ``t`` is clipped depends on earlier clips.

Computation (vectorised, same result). A clip at ``f`` only changes bands of ``t`` in
``(f, f + reach]`` (``reach`` = one window; two for ``mad``, whose scale is a window over
residuals that are themselves window statistics). So:

1. one vectorised pass computes every band as if nothing were clipped (rank filters / sliding
   sums over the raw values); it is exact up to and including the first point outside its band;
2. walking the candidates in time order, the first one is a true anomaly: clip it; recompute
   only ``(f, f + reach]`` with the same vectorised code; a new point outside in there is the
   next true anomaly, and so on; past ``f + reach`` with no new anomaly, pass 1 is exact again.

Shortcut for order statistics (``mad``, ``quantile``): when the raw and the clipped value are
on the same side of every order statistic whose window holds the point (a spike clipped to the
band edge is still above every later median), no band changes, and step 2 skips the recompute.

Cost: one O(n) pass plus O(reach) vectorised work per anomaly that is not skipped. Scores
equal a plain point-by-point loop of the definition (tested against one).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from scipy import ndimage

from aiops.detectors.base import Detector, Param, float_array
from aiops.errors import InvalidInput

logger = logging.getLogger(__name__)

__all__ = ["RollingDetector", "moments", "order_stats", "rank_index", "window_params"]

MAX_WINDOW = 100_000
_CHUNK = 1 << 16  # pass 1 runs in chunks of this many points: arrays stay in cache


def window_params(default_window: int, min_min_periods: int) -> tuple[Param, ...]:
    return (
        Param(
            "window",
            int,
            default_window,
            f"an integer in [2, {MAX_WINDOW}]",
            lambda v: 2 <= v <= MAX_WINDOW,
        ),
        Param(
            "min_periods",
            int,
            None,
            f"null (window // 2) or an integer in [{min_min_periods}, window]",
            lambda v: v >= min_min_periods,
            optional=True,
        ),
    )


def resolve_min_periods(cls: type[Detector], params: dict[str, Any], min_min_periods: int) -> None:
    window = params["window"]
    if params["min_periods"] is None:
        params["min_periods"] = max(min_min_periods, window // 2)
    elif params["min_periods"] > window:
        raise cls._error(
            "min_periods",
            f"min_periods ({params['min_periods']}) must not exceed window ({window})",
            f"an integer in [{min_min_periods}, window]",
        )


# --------------------------------------------------------------------------- window statistics


def rank_index(q: float, n: Any) -> Any:
    """0-based order statistic used for quantile ``q`` of ``n`` values: round(q * (n - 1)).

    Halves round up. The same formula serves full and partial windows so both paths agree.
    """
    return np.floor(q * (np.asarray(n) - 1) + 0.5).astype(np.intp)


def _window_matrix(arr: np.ndarray, a: int, b: int, w: int) -> np.ndarray:
    """Rows ``arr[t-w:t]`` for ``t`` in ``[a, b)``; NaN where ``t - w + j < 0``."""
    idx = np.arange(a, b)[:, None] - w + np.arange(w)[None, :]
    out = arr[np.clip(idx, 0, None)]
    out[idx < 0] = np.nan
    return out


def order_stats(
    arr: np.ndarray, a: int, b: int, w: int, qs: tuple[float, ...], min_count: int, fast_from: int
) -> list[np.ndarray]:
    """Order statistics ``qs`` of ``arr[max(0, t-w):t]`` (NaN skipped) for ``t`` in ``[a, b)``.

    ``fast_from``: first ``t`` whose window is complete and NaN-free (NaN may only lead the
    array). Those go through ``scipy.ndimage.rank_filter`` (O(log w) per point); earlier ones
    (a young stream) through a sorted matrix. A window with fewer than ``min_count`` values
    gives NaN.
    """
    out = [np.full(b - a, np.nan) for _ in qs]
    split = min(max(a, fast_from), b)
    if split > a:
        rows = np.sort(_window_matrix(arr, a, split, w), axis=1)  # NaN sort last
        count = (~np.isnan(rows)).sum(axis=1)
        ok = count >= max(min_count, 1)
        pick = np.arange(split - a)
        for q, res in zip(qs, out, strict=True):
            r = rank_index(q, np.maximum(count, 1))
            res[: split - a] = np.where(ok, rows[pick, r], np.nan)
    if b > split:
        if w < min_count:
            return out
        data = arr[split - w : b - 1]
        h = w // 2
        for q, res in zip(qs, out, strict=True):
            filtered = ndimage.rank_filter(data, int(rank_index(q, w)), size=w, mode="nearest")
            res[split - a :] = filtered[h : h + b - split]
    return out


def _sliding_mean_var(data: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance (ddof=1) of every window ``data[s:s+w]``.

    Each window sum is the sum of exactly its own points: a suffix sum of one block of ``w``
    plus a prefix sum of the next (both running sums restart every block), each centred on its
    block's median-of-three reference. So a huge value never leaks rounding error into a
    window that does not contain it, and a large level costs no precision in the variance.
    """
    n = len(data)
    nwin = n - w + 1
    nb = -(-n // w) + 1
    blocks = np.empty(nb * w)
    blocks[:n] = data
    blocks[n:] = data[-1]
    blocks = blocks.reshape(nb, w)
    ref = np.median(blocks[:, [0, w // 2, w - 1]], axis=1)
    blocks -= ref[:, None]
    squares = blocks * blocks
    prefix = np.cumsum(blocks, axis=1).ravel()
    prefix2 = np.cumsum(squares, axis=1).ravel()
    suffix = np.cumsum(blocks[:, ::-1], axis=1)[:, ::-1].ravel()
    suffix2 = np.cumsum(squares[:, ::-1], axis=1)[:, ::-1].ravel()
    del blocks, squares
    # window s = j*w + o: suffix of block j from o (w - o points, around ref[j])
    # + prefix of block j+1 of length o (around ref[j+1]); o == 0 has no prefix part
    s1 = suffix[:nwin]
    q1 = suffix2[:nwin]
    s2 = prefix[w - 1 : w - 1 + nwin].copy()
    q2 = prefix2[w - 1 : w - 1 + nwin].copy()
    s2[::w] = 0.0
    q2[::w] = 0.0
    n1 = np.tile(np.arange(w, 0, -1, dtype=np.float64), nb)[:nwin]
    delta = np.repeat(ref[:-1] - ref[1:], w)[:nwin]  # move block j's sums onto ref[j+1]
    total = s1 + n1 * delta + s2
    total2 = q1 + (2.0 * delta) * s1 + n1 * (delta * delta) + q2
    mean = np.repeat(ref[1:], w)[:nwin] + total / w
    var = (total2 - total * total / w) / (w - 1)
    np.maximum(var, 0.0, out=var)
    return mean, var


def moments(
    arr: np.ndarray, a: int, b: int, w: int, min_count: int, fast_from: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (ddof=1) of ``arr[max(0, t-w):t]`` for ``t`` in ``[a, b)``."""
    mean = np.full(b - a, np.nan)
    std = np.full(b - a, np.nan)
    split = min(max(a, fast_from), b)
    if split > a:
        rows = _window_matrix(arr, a, split, w)
        count = (~np.isnan(rows)).sum(axis=1)
        ok = count >= max(min_count, 2)
        safe = np.maximum(count, 2)
        m = np.nansum(rows, axis=1) / np.maximum(count, 1)
        dev = rows - m[:, None]
        v = np.nansum(dev * dev, axis=1) / (safe - 1)
        mean[: split - a] = np.where(ok, m, np.nan)
        std[: split - a] = np.where(ok, np.sqrt(v), np.nan)
    if b > split and w >= min_count:
        m, v = _sliding_mean_var(arr[split - w : b - 1], w)
        mean[split - a :] = m
        std[split - a :] = np.sqrt(v)
    return mean, std


# --------------------------------------------------------------------------- the driver


class RollingDetector(Detector):
    """Base of window models. Learned state: the last ``window`` learned (clipped) values."""

    reach_windows: ClassVar[int] = 1

    def _reset(self) -> None:
        self._tail = np.empty(0)

    # arrays of the current call, in "full" coordinates: the tail first, then the new points
    _c: np.ndarray
    _lo: np.ndarray
    _e: np.ndarray
    _up: np.ndarray

    def _start(self, x: np.ndarray) -> None:
        """Set up ``_c`` (and any helper arrays) for a call; positions ``< len(tail)`` are final."""
        self._n0 = len(self._tail)
        self._c = np.concatenate([self._tail, x])

    def _mins(self, a: int, b: int) -> np.ndarray:
        """The shared scale floor (see :mod:`aiops.detectors.base`) of positions ``[a, b)``."""
        return self._floor[a - self._n0 : b - self._n0].copy()

    def _compute(self, a: int, b: int) -> None:
        """Write bands for positions ``[a, b)`` into ``_lo/_e/_up`` from the current arrays,
        assuming no point in ``[a, b)`` is clipped (positions before ``a`` are final)."""
        raise NotImplementedError

    def _clip(self, g: int) -> bool:
        """Point ``g`` scored > 1: learn it clipped to its band. Return False only when the
        clip provably changes no later band (then nothing is recomputed)."""
        self._c[g] = min(max(self._c[g], self._lo[g]), self._up[g])
        return True

    def _finish(self) -> None:
        w = self.params["window"]
        self._tail = self._c[-w:].copy()

    def _run(
        self, x: np.ndarray, ticks: np.ndarray | None, tick_ns: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n0 = len(self._tail)
        self._start(x)
        big_n = n0 + len(x)
        # pass 1 writes every position from n0 on; the tail is not scored now
        self._lo, self._e, self._up = (np.empty(big_n) for _ in range(3))
        for arr in (self._lo, self._e, self._up):
            arr[:n0] = np.nan
        lo, up = self._lo, self._up
        found = []
        for a in range(n0, big_n, _CHUNK):  # pass 1: as if nothing were clipped (cache-sized)
            b = min(a + _CHUNK, big_n)
            self._compute(a, b)
            raw = x[a - n0 : b - n0]  # x is the raw value of position n0 + i (_c gets clipped)
            found.append(np.flatnonzero((raw < lo[a:b]) | (raw > up[a:b])) + a)
        candidates = np.concatenate(found)
        reach = self.reach_windows * self.params["window"]
        # Invariant: the arrays at positions >= pos are exact given the clips before pos and
        # none from pos on. Below dirty_end they were recomputed after the last visible clip;
        # from dirty_end on they are pass 1's values (their windows hold no clipped point).
        pos = dirty_end = n0
        clipped = recomputed = 0
        # consecutive points outside the band: past adapt_after they are learned raw, so a
        # lasting change becomes the new normal (pass 1 already assumed raw values there)
        run, last_out = self._out_run, n0 - 1
        while pos < big_n:
            if pos >= dirty_end:
                i = int(np.searchsorted(candidates, pos))
                if i == len(candidates):
                    break
                f = int(candidates[i])
            else:
                raw = x[pos - n0 : dirty_end - n0]
                out = (raw < lo[pos:dirty_end]) | (raw > up[pos:dirty_end])
                if not out.any():
                    pos = dirty_end
                    continue
                f = pos + int(out.argmax())
            run = run + 1 if f == last_out + 1 else 1
            last_out = f
            pos = f + 1
            if self._adapt(run):
                continue
            clipped += 1
            if self._clip(f) and pos < big_n:
                dirty_end = min(f + reach + 1, big_n)
                self._compute(pos, dirty_end)
                recomputed += 1
        self._out_run = run if last_out == big_n - 1 else 0
        logger.debug("%s: %d points clipped, %d windows recomputed", self.kind, clipped, recomputed)
        self._finish()
        result = (self._lo[n0:], self._e[n0:], self._up[n0:])
        del self._c, self._lo, self._e, self._up
        return result

    def _learned(self) -> dict[str, Any]:
        return {"tail": self._tail}

    def _restore(self, learned: Mapping[str, Any]) -> None:
        tail = float_array(learned.get("tail", []), "learned.tail", self.params["window"])
        if np.isnan(tail).any():
            raise InvalidInput(
                "detector state: learned.tail must not hold null", field="state.learned.tail"
            )
        self._tail = tail
