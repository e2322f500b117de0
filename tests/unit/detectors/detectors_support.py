"""Synthetic series and per-kind settings shared by the detector tests (seeded, small)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

T0 = pd.Timestamp("2024-03-04 00:00", tz="UTC")  # a Monday


def index(n: int, freq: str = "1min", start: pd.Timestamp = T0) -> pd.DatetimeIndex:
    return pd.date_range(start, periods=n, freq=freq)


def noise(
    n: int, seed: int = 0, level: float = 10.0, sd: float = 1.0, freq: str = "1min"
) -> pd.Series:
    rng = np.random.default_rng(seed)
    return pd.Series(level + rng.normal(0.0, sd, n), index=index(n, freq), name="metric")


def daily(
    days: int, seed: int = 0, freq: str = "15min", amplitude: float = 10.0, sd: float = 1.0
) -> pd.Series:
    """A daily sine (peak at 06:00 UTC) plus noise."""
    idx = index(int(pd.Timedelta(days=days) / pd.Timedelta(freq)), freq)
    hours = (idx.hour + idx.minute / 60).to_numpy()
    rng = np.random.default_rng(seed)
    values = 50.0 + amplitude * np.sin(2 * np.pi * hours / 24) + rng.normal(0.0, sd, len(idx))
    return pd.Series(values, index=idx, name="metric")


def messy(n: int = 1500, seed: int = 0) -> pd.Series:
    """Noise with everything at once: spikes (some within one window of each other), a level
    shift, a variance change, a dip, and a few missing values."""
    s = noise(n, seed)
    x = s.to_numpy().copy()
    rng = np.random.default_rng(seed + 1)
    x[n // 5] += 15
    x[n // 5 + 3] -= 12
    x[n // 5 + 4] += 30
    x[n // 2 :] += 8
    x[3 * n // 4 :] = 18 + (x[3 * n // 4 :] - 18) * 4
    spikes = rng.choice(n, n // 100, replace=False)
    x[spikes] += rng.normal(0, 10, len(spikes))
    x[rng.choice(n, n // 150, replace=False)] = np.nan
    return pd.Series(x, index=s.index, name="metric")


# Small, quick-to-warm settings per kind for the generic contract tests, and how many leading
# points are certainly warm-up with them on a 1-minute series.
CONTRACT_PARAMS: dict[str, dict[str, Any]] = {
    "auto": {"window": 30, "decide_after": 200},
    "zscore": {"window": 30, "min_periods": 10, "k": 3.0},
    "mad": {"window": 30, "min_periods": 10, "k": 3.0},
    "ewma": {"alpha": 0.1, "k": 3.0},
    "quantile": {"window": 60, "q_low": 0.1, "q_high": 0.9, "margin": 0.5},
    "seasonal": {"bucket_minutes": 60, "min_periods": 2, "k": 3.0},
    "threshold": {"lower": 2.0, "upper": 18.0},
}
WARM_UP: dict[str, int] = {
    "auto": 16,  # 8 points for the median, 8 residuals for the MAD (window 30)
    "zscore": 10,
    "mad": 20,
    "ewma": 30,
    "quantile": 30,
    "seasonal": 2 * 1440,
    "threshold": 0,
}


def contract_series(seed: int = 0) -> pd.Series:
    """Four days at 1 minute: a daily sine, noise, spikes, a level shift, NaN, an inf."""
    n = 4 * 1440
    idx = index(n)
    hours = (idx.hour + idx.minute / 60).to_numpy()
    rng = np.random.default_rng(seed)
    x = 10.0 + 3.0 * np.sin(2 * np.pi * hours / 24) + rng.normal(0.0, 0.5, n)
    spikes = rng.choice(np.arange(100, n), 40, replace=False)
    x[spikes] += rng.choice([-1, 1], 40) * rng.uniform(4, 30, 40)
    x[3 * 1440 + 300 :] += 4.0
    x[rng.choice(n, 30, replace=False)] = np.nan
    x[777] = np.inf
    return pd.Series(x, index=idx, name="metric")


PLAIN: dict[str, Any] = {
    "calibration": "none",
    "resolution_floor": 0.0,
    "level_floor": 0.0,
    "spread_floor": 0.0,
    "adapt_after": 10**6,
}
"""The shared settings that turn every floor, the bounded adaptation and the calibration off:
the score is the band distance of the kind's own model (what the by-hand recursions, the
plain-loop references and the band mechanics tests check exactly)."""


def plain(kind: str) -> dict[str, Any]:
    """:data:`PLAIN` for a calibrated kind; nothing for ``threshold`` (a fixed rule)."""
    return {} if kind == "threshold" else dict(PLAIN)
