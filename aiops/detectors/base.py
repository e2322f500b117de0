"""What every detector shares: parameters, input checks, the score, JSON state.

A detector is a small stateful object over ONE series (a float ``pandas.Series`` on a
``DatetimeIndex``). Its life is a stream: every call to :meth:`Detector.fit` or
:meth:`Detector.score` continues from where the previous call stopped.

* ``fit(series)`` learns from the points (anomalies are clipped first, exactly as ``score``
  would do) and emits nothing. ``fit(a)`` then ``score(b)`` gives the same scores for ``b``
  as ``score(a + b)``.
* ``score(series)`` scores every point against the state learned from the points *before* it,
  then learns from it: a point scored > 1 is clipped to the band before it is learned, so an
  anomaly never widens the band it broke. Scoring is causal, so scoring a series in one call or
  in consecutive pieces gives the same frame (to float rounding).
* ``state()`` is a JSON-able dict (no NaN: missing floats are ``None``);
  :func:`aiops.detectors.from_state` rebuilds an equivalent detector.

The score: 0 is normal, > 1 is anomalous, for every kind. Each row also carries ``expected``,
``lower`` and ``upper``, the model's band. A point with too little history (warm-up) or no value
(NaN, +-inf: treated as missing and not learned) scores a neutral 0 with
``expected``/``lower``/``upper`` NaN.

What every model kind shares (not ``threshold``, which is a fixed rule):

* **Scale floor from the series itself.** The band's scale is never below
  ``max(min_scale, resolution_floor * resolution, level_floor * level, spread_floor * spread)``
  (a standard deviation, before ``k``): ``resolution`` is
  the smallest non-zero step between consecutive values seen so far (1 for a counter; before
  any step, the last decimal place the value is written to), ``level``
  a slow average of ``|value|`` and ``spread`` a slow average of ``|step|`` (both over about
  ``long_window`` points, each value learned at most :data:`FLOOR_LEARN_CAP` times the average
  so far, so a glitch does not widen the bands after it). A flat stretch followed by an
  ordinary value is not an extreme anomaly.
* **Bounded adaptation.** A point outside its band is learned clipped to the band (an anomaly
  does not widen the band it broke), but after ``adapt_after`` consecutive points outside, the
  model learns the raw values: a lasting change of level is alerted at its onset, then becomes
  the new normal within about ``adapt_after`` points plus one window (``zscore``, ``mad``,
  ``quantile``, ``ewma``). ``auto`` never clips (its medians ignore anomalies shorter than
  half a window and follow a lasting change within one); ``seasonal`` learns once per period,
  clipped, at its ``alpha`` rate, so it accepts ``adapt_after`` but does not use it.
* **Calibrated score** (``calibration="likelihood"``, the default). The band distance ``z``
  (1 at the band edge) is capped at :data:`CALIBRATION_CAP` and scaled into ``a`` in [0, 1],
  distances up to :data:`CALIBRATION_DEAD_ZONE` counting as 0 (the wiggle of a flat, quantised
  series is nothing); the score compares the average of the last ``short_window`` values of
  ``a`` with their long-run mean and spread (exponentially weighted over about
  ``long_window`` points), as Numenta's
  anomaly likelihood does: ``tail = P(N(0, 1) > (avg - mean) / spread)`` and
  ``score = log(2 tail) / log(2 alert_probability)`` above the mean (0 at or below it), so the
  score is 1 when the recent behaviour is
  as unlikely as ``alert_probability`` under the series' own history, whatever its noise looks
  like. The alert rate on normal data is then about the same on every series. The first
  :data:`CALIBRATION_WARMUP` band distances only teach the calibration (score 0). A point within
  :data:`ORDINARY_DISTANCE` of its expected value scores at most 1: a spike flags itself, not
  the ordinary points after it. With
  ``calibration="none"`` the score is the band distance itself (``score <= 1`` exactly inside
  ``[lower, upper]``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
from scipy.special import log_ndtr

from aiops.detectors._kernels import calibration_pass, floor_pass
from aiops.errors import InvalidInput

__all__ = [
    "COLUMNS",
    "MAX_SCORE",
    "Checked",
    "Detector",
    "Param",
    "band_score",
    "check_series",
    "scale_floor",
]

logger = logging.getLogger(__name__)

COLUMNS = ("score", "expected", "lower", "upper")
MAX_SCORE = 1e12
"""Scores are capped here, so a band of zero width (a constant window) gives a finite score."""
REL_SCALE_FLOOR = 1e-9
"""A scale is never below this fraction of ``|expected|`` (float noise on a constant series)."""
CALIBRATION_CAP = 4.0
"""Band distances beyond this (20 standard deviations at k = 5) all count as fully anomalous."""
CALIBRATION_DEAD_ZONE = 0.3
"""Band distances up to this (1.5 standard deviations at k = 5) count as 0 for the calibration:
the one-step wiggle of a flat, quantised series is not evidence of anything."""
ORDINARY_DISTANCE = 0.5
"""A point this close to its expected value (half the band: 2.5 standard deviations at k = 5)
never scores above 1, however unusual the points before it."""
CALIBRATION_WARMUP = 50
"""Band distances that teach the calibration before it scores (capped at ``long_window``)."""
CALIBRATION_SPREAD_FLOOR = 0.02
"""Smallest long-run spread of the scaled distance ``a``: with the dead zone most ``a`` are 0,
and a spread near 0 made one ordinary excursion of clean noise an alert."""
FLOOR_LEARN_CAP = 10.0
"""The floors' slow averages learn a ``|value|`` or ``|step|`` at most this many times their
average so far (a glitch does not widen every band after it)."""
_JUST_ABOVE_ONE = float(np.nextafter(1.0, 2.0))
_CHUNK = 1 << 16


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class Param:
    """One hyper-parameter: its type, default, the rule it must satisfy, in words."""

    name: str
    type: type
    default: Any
    allowed: str
    check: Callable[[Any], bool] | None = None
    optional: bool = False

    def coerce(self, kind: str, value: Any) -> Any:
        if value is None:
            if self.optional:
                return None
            raise self._error(kind, value)
        if self.type is int:
            ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
            if not ok and isinstance(value, (float, np.floating)) and float(value).is_integer():
                ok = True  # 60.0 from a JSON/YAML round trip
            if not ok:
                raise self._error(kind, value)
            value = int(value)
        elif self.type is float:
            if isinstance(value, (bool, np.bool_)) or not isinstance(
                value, (int, float, np.integer, np.floating)
            ):
                raise self._error(kind, value)
            value = float(value)
            if not math.isfinite(value):
                raise self._error(kind, value)
        elif self.type is str and not isinstance(value, str):
            raise self._error(kind, value)
        if self.check is not None and not self.check(value):
            raise self._error(kind, value)
        return value

    def _error(self, kind: str, value: Any) -> InvalidInput:
        return InvalidInput(
            f"{kind} detector: parameter {self.name!r} must be {self.allowed}, got {value!r}",
            field=f"params.{self.name}",
            allowed=self.allowed,
        )


COMMON_PARAMS: tuple[Param, ...] = (
    Param(
        "calibration",
        str,
        "likelihood",
        "'likelihood' (score calibrated on the series' own history) or 'none' (band distance)",
        lambda v: v in ("likelihood", "none"),
    ),
    Param(
        "alert_probability",
        float,
        0.02,
        "a number in (0, 0.5) (how unlikely recent behaviour must be to score 1)",
        lambda v: 0 < v < 0.5,
    ),
    Param(
        "short_window",
        int,
        10,
        "an integer in [1, 1000] (points averaged before calibration)",
        lambda v: 1 <= v <= 1000,
    ),
    Param(
        "long_window",
        int,
        1000,
        "an integer in [10, 1000000] (points of history the calibration and floors remember)",
        lambda v: 10 <= v <= 1_000_000,
    ),
    Param(
        "adapt_after",
        int,
        30,
        "an integer in [1, 1000000] (consecutive points outside the band after which the "
        "model learns the new level)",
        lambda v: 1 <= v <= 1_000_000,
    ),
    Param(
        "resolution_floor",
        float,
        1.0,
        "a number in [0, 100] (scale floor as a multiple of the value resolution)",
        lambda v: 0 <= v <= 100,
    ),
    Param(
        "level_floor",
        float,
        0.005,
        "a number in [0, 1) (scale floor as a fraction of the typical |value|)",
        lambda v: 0 <= v < 1,
    ),
    Param(
        "spread_floor",
        float,
        0.25,
        "a number in [0, 10] (scale floor as a multiple of the typical |step|)",
        lambda v: 0 <= v <= 10,
    ),
)
"""Parameters of every calibrated kind (see the module docstring)."""


def _param_error(kind: str, name: str, message: str, allowed: str) -> InvalidInput:
    return InvalidInput(f"{kind} detector: {message}", field=f"params.{name}", allowed=allowed)


# --------------------------------------------------------------------------- scoring


def scale_floor(scale: np.ndarray, expected: np.ndarray, min_scale: float) -> np.ndarray:
    """``max(scale, min_scale, 1e-9 * |expected|)`` (NaN stays NaN), in place on ``scale``."""
    np.fmax(scale, min_scale, out=scale, where=~np.isnan(scale))
    np.fmax(scale, REL_SCALE_FLOOR * np.abs(expected), out=scale, where=~np.isnan(scale))
    return scale


def band_score(
    x: np.ndarray, lower: np.ndarray, expected: np.ndarray, upper: np.ndarray
) -> np.ndarray:
    """Distance from ``expected`` in units of the half-band on that side.

    ``(x - expected) / (upper - expected)`` above, ``(expected - x) / (expected - lower)``
    below; then forced to ``<= 1`` inside ``[lower, upper]`` and ``> 1`` outside, so float
    rounding can never disagree with the band. NaN band (warm-up) scores 0; capped at
    :data:`MAX_SCORE`. Works in cache-sized chunks (it is on every detector's hot path).
    """
    out = np.empty(len(x))
    for a in range(0, len(x), _CHUNK):
        b = a + _CHUNK
        out[a:b] = _band_score(x[a:b], lower[a:b], expected[a:b], upper[a:b])
    return out


def _band_score(
    x: np.ndarray, lower: np.ndarray, expected: np.ndarray, upper: np.ndarray
) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        dev = x - expected
        score = np.subtract(upper, expected)
        below = dev < 0
        np.subtract(expected, lower, out=score, where=below)
        np.abs(dev, out=dev)
        np.divide(dev, score, out=score)
    outside = x < lower
    outside |= x > upper
    np.maximum(score, _JUST_ABOVE_ONE, out=score, where=outside)
    np.minimum(score, 1.0, out=score, where=~outside)  # NaN stays NaN
    np.minimum(score, MAX_SCORE, out=score)
    score[np.isnan(score)] = 0.0  # warm-up (NaN band) and 0/0 (x == expected on a zero band)
    return score


# --------------------------------------------------------------------------- JSON helpers


def encode(value: Any) -> Any:
    """numpy / NaN -> plain JSON (NaN and +-inf become ``None``)."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f":
            return [None if not math.isfinite(v) else v for v in value.tolist()]
        return value.tolist()
    if isinstance(value, Mapping):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def float_array(value: Any, name: str, max_len: int | None = None) -> np.ndarray:
    """A JSON list of numbers / ``None`` -> float64 array (``None`` -> NaN)."""
    if not isinstance(value, list):
        raise InvalidInput(f"detector state: {name} must be a list", field=f"state.{name}")
    if max_len is not None and len(value) > max_len:
        raise InvalidInput(
            f"detector state: {name} has {len(value)} entries, at most {max_len} allowed",
            field=f"state.{name}",
        )
    try:
        return np.array([np.nan if v is None else float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInput(
            f"detector state: {name} must hold numbers", field=f"state.{name}"
        ) from None


def float_value(value: Any, name: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(
            f"detector state: {name} must be a number or null", field=f"state.{name}"
        )
    return float(value)


# --------------------------------------------------------------------------- input checks


@dataclass(frozen=True)
class Checked:
    """A validated series: its index, a read-only float64 view of the values and the times."""

    index: pd.DatetimeIndex
    values: np.ndarray

    @property
    def first_ns(self) -> int:
        return _utc_ns(self.index[0])

    @property
    def last_ns(self) -> int:
        return _utc_ns(self.index[-1])

    def ticks(self) -> tuple[np.ndarray, int]:
        """(int64 UTC times in the index's own unit, nanoseconds per tick): no conversion copy."""
        index = (
            self.index.tz_convert("UTC").tz_localize(None)
            if self.index.tz is not None
            else self.index
        )
        unit = index.unit
        return index.asi8, {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[unit]


def _utc_ns(stamp: pd.Timestamp) -> int:
    return int(stamp.as_unit("ns").value)  # .value is UTC-based for tz-aware stamps


def check_series(series: Any) -> Checked:
    """Validate the input of fit/score. Raises InvalidInput with a clear message."""
    if not isinstance(series, pd.Series):
        raise InvalidInput(
            "series must be a pandas Series of floats on a DatetimeIndex, "
            f"got {type(series).__name__}",
            field="series",
        )
    index = series.index
    if not isinstance(index, pd.DatetimeIndex):
        raise InvalidInput(
            f"series index must be a DatetimeIndex, got {type(index).__name__}",
            field="series.index",
        )
    if index.hasnans:
        raise InvalidInput("series index contains NaT", field="series.index")
    if not index.is_monotonic_increasing:
        at = int(np.flatnonzero(np.diff(index.asi8) < 0)[0]) + 1
        raise InvalidInput(
            f"series index is not sorted ascending: {index[at]} (position {at}) "
            f"comes after {index[at - 1]}",
            field="series.index",
        )
    if not index.is_unique:
        first = index[index.duplicated()][0]
        raise InvalidInput(
            f"series index has duplicate timestamps (first: {first})", field="series.index"
        )
    if not (
        pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype)
    ):
        raise InvalidInput(
            f"series values must be numeric, got dtype {series.dtype}", field="series"
        )
    values = np.asarray(series.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    values = values.view()
    values.flags.writeable = False  # never written: the caller's data stays as it was
    return Checked(index, values)


# --------------------------------------------------------------------------- the base class


class Detector(ABC):
    """Base of every detector kind. See the module docstring for the contract."""

    kind: ClassVar[str]
    version: ClassVar[int] = 1
    PARAMS: ClassVar[tuple[Param, ...]] = ()
    calibrated: ClassVar[bool] = True
    """Whether the kind has the shared floors, adaptation and calibration (not ``threshold``)."""
    COMMON_DEFAULTS: ClassVar[Mapping[str, Any]] = {}
    """A kind's own defaults for some of :data:`COMMON_PARAMS`."""

    def __init__(self, **params: Any) -> None:
        self.params: dict[str, Any] = self._validate(params)
        self._last_ns: int | None = None
        self._n_seen = 0
        self._reset_common()
        self._reset()

    @classmethod
    def all_params(cls) -> tuple[Param, ...]:
        """The kind's own parameters, then (for calibrated kinds) :data:`COMMON_PARAMS`."""
        if not cls.calibrated:
            return cls.PARAMS
        common = tuple(
            replace(p, default=cls.COMMON_DEFAULTS[p.name]) if p.name in cls.COMMON_DEFAULTS else p
            for p in COMMON_PARAMS
        )
        return (*cls.PARAMS, *common)

    def _reset_common(self) -> None:
        # scale floor: last value, smallest non-zero step, slow |value| and |step| averages
        self._f_prev = math.nan
        self._f_res = math.inf
        self._f_lvl = math.nan
        self._f_sp = math.nan
        # calibration: long-run mean / variance of the scaled distance, count, short tail
        self._c_mean = math.nan
        self._c_var = math.nan
        self._c_n = 0
        self._c_tail = np.empty(0)
        # consecutive points outside the band at the end of the stream (adaptation)
        self._out_run = 0
        self._floor = np.empty(0)

    # ---- parameters

    @classmethod
    def _validate(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        known = {p.name: p for p in cls.all_params()}
        for name in params:
            if name not in known:
                allowed = ", ".join(known) or "none"
                raise InvalidInput(
                    f"{cls.kind} detector: unknown parameter {name!r}; allowed: {allowed}",
                    field=f"params.{name}",
                    allowed=sorted(known),
                )
        out = {name: p.coerce(cls.kind, params.get(name, p.default)) for name, p in known.items()}
        cls._resolve(out)
        return out

    @classmethod  # noqa: B027 (an optional hook)
    def _resolve(cls, params: dict[str, Any]) -> None:
        """Fill derived defaults and check rules between parameters (in place)."""

    @classmethod
    def _error(cls, name: str, message: str, allowed: str) -> InvalidInput:
        return _param_error(cls.kind, name, message, allowed)

    def params_hash(self) -> str:
        """sha256 (hex) of kind + resolved params: equal for detectors that behave alike."""
        text = json.dumps(
            {"kind": self.kind, "params": self.params}, sort_keys=True, separators=(",", ":")
        )
        return hashlib.sha256(text.encode()).hexdigest()

    # ---- the stream

    @property
    def last_timestamp(self) -> pd.Timestamp | None:
        """The last timestamp learned (UTC); the next call must start strictly after it."""
        return None if self._last_ns is None else pd.Timestamp(self._last_ns, unit="ns", tz="UTC")

    @property
    def n_seen(self) -> int:
        """How many points (missing ones included) this detector has been fed."""
        return self._n_seen

    def fit(self, series: pd.Series) -> Self:
        """Learn from ``series`` (continuing the stream) without producing scores.

        Exactly the state change of :meth:`score`: anomalous points are clipped before they
        are learned, so a training window with a few incidents in it does not poison the model.
        """
        self._process(series, want_scores=False)
        return self

    def score(self, series: pd.Series) -> pd.DataFrame:
        """Score every point of ``series`` causally, then learn from it (continuing the stream).

        Returns a frame with the index of ``series`` and float columns ``score``, ``expected``,
        ``lower``, ``upper``. The input is not modified.
        """
        frame = self._process(series, want_scores=True)
        assert frame is not None
        return frame

    uses_time: ClassVar[bool] = False
    """Whether ``_run`` needs the timestamps (only ``seasonal``); others skip converting them."""

    def _process(self, series: pd.Series, *, want_scores: bool) -> pd.DataFrame | None:
        checked = check_series(series)
        index, values = checked.index, checked.values
        n = len(values)
        if n and self._last_ns is not None and checked.first_ns <= self._last_ns:
            raise InvalidInput(
                f"series starts at {index[0]}, not after the last point this {self.kind} "
                f"detector has learned ({self.last_timestamp}); pass only newer points, e.g. "
                "series[series.index > detector.last_timestamp]",
                field="series.index",
            )
        with np.errstate(invalid="ignore", over="ignore"):
            dense = bool(np.isfinite(values.sum())) or bool(np.isfinite(values).all())
        finite = None if dense else np.isfinite(values)
        x = values if finite is None else values[finite]
        ticks, tick_ns = checked.ticks() if self.uses_time else (None, 1)
        if ticks is not None and finite is not None:
            ticks = ticks[finite]
        if len(x):
            if self.calibrated:
                self._floor = self._floors(x)
            lower, expected, upper = self._run(x, ticks, tick_ns)
            self._floor = np.empty(0)
        else:
            lower = expected = upper = np.empty(0)
        if n:
            self._last_ns = checked.last_ns
            self._n_seen += n
        logger.debug("%s detector: %d points (%d missing)", self.kind, n, n - len(x))
        calibrate = self.calibrated and self.params["calibration"] == "likelihood"
        if not want_scores and not calibrate:
            return None
        score = self._score(x, lower, expected, upper)
        if calibrate and len(x):
            score = self._calibrate(score, ~np.isnan(upper))
        if not want_scores:
            return None
        if finite is not None:
            cols = []
            for arr, fill in ((score, 0.0), (expected, np.nan), (lower, np.nan), (upper, np.nan)):
                full = np.full(n, fill)
                full[finite] = arr
                cols.append(full)
            score, expected, lower, upper = cols
        return pd.DataFrame(
            {"score": score, "expected": expected, "lower": lower, "upper": upper},
            index=index,
            copy=False,
        )

    def _score(
        self, x: np.ndarray, lower: np.ndarray, expected: np.ndarray, upper: np.ndarray
    ) -> np.ndarray:
        return band_score(x, lower, expected, upper)

    # ---- what every calibrated kind shares

    def _floors(self, x: np.ndarray) -> np.ndarray:
        """Scale floor before each point of ``x`` (finite values), learned from the points
        before it; advances the floor state. See the module docstring."""
        p = self.params
        floor = np.empty(len(x))
        state = np.array([self._f_prev, self._f_res, self._f_lvl, self._f_sp])
        floor_pass(
            x,
            state,
            1.0 / p["long_window"],
            FLOOR_LEARN_CAP,
            float(p["min_scale"]),
            p["resolution_floor"],
            p["level_floor"],
            p["spread_floor"],
            floor,
        )
        self._f_prev, self._f_res, self._f_lvl, self._f_sp = (float(v) for v in state)
        return floor

    def _calibrate(self, z: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Band distances -> calibrated scores (see the module docstring); advances the state."""
        p = self.params
        out = np.zeros(len(z))
        idx = None if valid.all() else np.flatnonzero(valid)
        zv = z if idx is None else z[idx]
        if not len(zv):
            return out
        sw = p["short_window"]
        ring = np.full(sw, np.nan)
        if len(self._c_tail):
            ring[sw - len(self._c_tail) :] = self._c_tail
        state = np.array([self._c_mean, self._c_var, float(self._c_n)])
        t = np.empty(len(zv))
        calibration_pass(
            zv,
            ring,
            state,
            2.0 / (p["long_window"] + 1),
            CALIBRATION_CAP,
            CALIBRATION_SPREAD_FLOOR,
            float(min(CALIBRATION_WARMUP, p["long_window"])),
            CALIBRATION_DEAD_ZONE,
            t,
        )
        self._c_mean, self._c_var = float(state[0]), float(state[1])
        self._c_n = int(state[2])
        self._c_tail = ring[~np.isnan(ring)]
        # score = log(2 tail) / log(2 p): 0 at or below the long-run mean (a constant or
        # quiet series scores 0), 1 where the tail is alert_probability
        high = np.flatnonzero(t > 0.0)  # NaN (warm-up) is not
        score = np.zeros(len(zv))
        score[high] = (log_ndtr(-t[high]) + math.log(2.0)) * (
            1.0 / math.log(2.0 * p["alert_probability"])
        )
        np.clip(score, 0.0, MAX_SCORE, out=score)
        # a point that is itself ordinary is never anomalous, however unusual the points just
        # before it: a spike flags itself, not the ordinary points after it
        np.minimum(score, 1.0, out=score, where=zv <= ORDINARY_DISTANCE)
        if idx is None:
            return score
        out[idx] = score
        return out

    def _adapt(self, run: int) -> bool:
        """Whether the ``run``-th consecutive point outside the band is learned raw."""
        return self.calibrated and run > self.params["adapt_after"]

    def describe(self) -> dict[str, Any]:
        """What this detector learned that a user may want to see (``auto`` says what it
        chose and why). Plain JSON."""
        return {"kind": self.kind}

    # ---- state

    def state(self) -> dict[str, Any]:
        """JSON-able dict: kind, version, params, stream position and the learned state."""
        return {
            "kind": self.kind,
            "version": self.version,
            "params": dict(self.params),
            "last_timestamp": None if self._last_ns is None else self.last_timestamp.isoformat(),
            "n_seen": self._n_seen,
            "learned": encode(self._learned()),
            **({"common": encode(self._common_state())} if self.calibrated else {}),
        }

    def _common_state(self) -> dict[str, Any]:
        return {
            "prev": self._f_prev,
            "resolution": None if math.isinf(self._f_res) else self._f_res,
            "level": self._f_lvl,
            "spread": self._f_sp,
            "cal_mean": self._c_mean,
            "cal_var": self._c_var,
            "cal_count": self._c_n,
            "cal_tail": self._c_tail,
            "out_run": self._out_run,
        }

    def _restore_common(self, common: Any) -> None:
        if common is None:
            return  # a state from before the shared floors: they start fresh
        if not isinstance(common, Mapping):
            raise InvalidInput("detector state: common must be a dict", field="state.common")
        for name in ("cal_count", "out_run"):
            v = common.get(name, 0)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise InvalidInput(
                    f"detector state: common.{name} must be a count", field=f"state.common.{name}"
                )
        self._f_prev = float_value(common.get("prev"), "common.prev")
        res = float_value(common.get("resolution"), "common.resolution")
        self._f_res = math.inf if math.isnan(res) else res
        self._f_lvl = float_value(common.get("level"), "common.level")
        self._f_sp = float_value(common.get("spread"), "common.spread")
        self._c_mean = float_value(common.get("cal_mean"), "common.cal_mean")
        self._c_var = float_value(common.get("cal_var"), "common.cal_var")
        self._c_n = common.get("cal_count", 0)
        tail = float_array(
            common.get("cal_tail", []), "common.cal_tail", self.params["short_window"]
        )
        if np.isnan(tail).any():
            raise InvalidInput(
                "detector state: common.cal_tail must not hold null", field="state.common.cal_tail"
            )
        self._c_tail = tail
        self._out_run = common.get("out_run", 0)

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        """Rebuild a detector of this kind from :meth:`state` (after a JSON round trip)."""
        if not isinstance(state, Mapping):
            raise InvalidInput("detector state must be a dict", field="state")
        if state.get("kind") != cls.kind:
            raise InvalidInput(
                f"detector state is for kind {state.get('kind')!r}, not {cls.kind!r}",
                field="state.kind",
            )
        if state.get("version") != cls.version:
            raise InvalidInput(
                f"{cls.kind} detector state version {state.get('version')!r} is not supported "
                f"(this code reads version {cls.version})",
                field="state.version",
            )
        params = state.get("params")
        if not isinstance(params, Mapping):
            raise InvalidInput("detector state: params must be a dict", field="state.params")
        detector = cls(**params)
        last = state.get("last_timestamp")
        if last is not None:
            try:
                stamp = pd.Timestamp(last)
            except (TypeError, ValueError):
                raise InvalidInput(
                    "detector state: last_timestamp must be an ISO timestamp",
                    field="state.last_timestamp",
                ) from None
            stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
            detector._last_ns = int(stamp.as_unit("ns").value)
        n_seen = state.get("n_seen", 0)
        if isinstance(n_seen, bool) or not isinstance(n_seen, int) or n_seen < 0:
            raise InvalidInput("detector state: n_seen must be a count", field="state.n_seen")
        detector._n_seen = n_seen
        learned = state.get("learned")
        if not isinstance(learned, Mapping):
            raise InvalidInput("detector state: learned must be a dict", field="state.learned")
        detector._restore(learned)
        if cls.calibrated:
            detector._restore_common(state.get("common"))
        return detector

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"

    # ---- what a kind implements

    @abstractmethod
    def _reset(self) -> None:
        """Empty learned state."""

    @abstractmethod
    def _run(
        self, x: np.ndarray, ticks: np.ndarray | None, tick_ns: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Score-and-learn over finite values ``x`` (read-only), in order.

        ``ticks``: int64 UTC times in units of ``tick_ns`` nanoseconds, only for kinds with
        ``uses_time`` (else None).

        Returns ``(lower, expected, upper)`` per point, each computed from the state before
        that point (NaN during warm-up), and leaves the state after the last point.
        """

    @abstractmethod
    def _learned(self) -> dict[str, Any]:
        """The learned state (numpy allowed; encoded to JSON by :meth:`state`)."""

    @abstractmethod
    def _restore(self, learned: Mapping[str, Any]) -> None:
        """Load :meth:`_learned` output after a JSON round trip; raise InvalidInput if malformed."""
