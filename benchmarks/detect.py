"""Throughput of every detector kind on one long series, next to a plain numpy pass.

Builds one float series on a 1 s DatetimeIndex (10M points = 116 days): a daily sine, Gaussian
noise, one spike per ~10,000 points, two level shifts and a variance burst. Then, in the same
run, times (median of ``--repeat``; a fresh detector each time, default params):

* the baseline: one vectorised numpy z-score over the same array, ``(x - x.mean()) / x.std()``;
* ``aiops.detectors.create(kind).score(series)`` for every kind: input checks, the model,
  the anomaly clipping, and the output frame (score, expected, lower, upper).

Prints kind, seconds, points/s and the ratio of its time to the baseline's (goal: >= 5M
points/s for every rolling model on 10M points).

    .venv/bin/python benchmarks/detect.py [--points 10000000] [--repeat 3] [--kinds zscore,mad]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiops import detectors

BENCH_PARAMS: dict[str, dict[str, float]] = {"threshold": {"lower": 50.0, "upper": 150.0}}


def make_series(n: int, seed: int = 0) -> pd.Series:
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64)
    x = 100.0 + 10.0 * np.sin(2 * np.pi * t / 86_400) + rng.normal(0.0, 1.0, n)
    spikes = rng.choice(n, max(1, n // 10_000), replace=False)
    x[spikes] += rng.normal(0.0, 20.0, len(spikes))
    x[n // 3 :] += 15.0  # level shifts
    x[2 * n // 3 :] -= 25.0
    burst = slice(n // 2, n // 2 + max(1, n // 100))
    x[burst] = 100.0 + (x[burst] - 100.0) * 3.0  # variance burst
    index = pd.date_range("2024-01-01", periods=n, freq="s", tz="UTC")
    return pd.Series(x, index=index, name="bench")


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kinds", default=",".join(detectors.KINDS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]

    series = make_series(args.points, args.seed)
    values = series.to_numpy()
    n = len(series)

    def baseline() -> np.ndarray:
        return (values - values.mean()) / values.std()

    base, _ = timed(baseline, args.repeat)
    rows = [("numpy baseline: (x - mean) / std", base, None)]
    for kind in kinds:
        params = BENCH_PARAMS.get(kind, {})
        seconds, frame = timed(
            lambda kind=kind, params=params: detectors.create(kind, **params).score(series),
            args.repeat,
        )
        assert isinstance(frame, pd.DataFrame) and len(frame) == n
        rows.append((kind, seconds, int((frame["score"].to_numpy() > 1).sum())))

    print(f"{n:,} points, median of {args.repeat} runs, default params")
    print(f"{'kind':<34}{'seconds':>9}{'points/s':>14}{'x baseline':>12}{'flagged':>10}")
    for name, seconds, flagged in rows:
        print(
            f"{name:<34}{seconds:>9.3f}{n / seconds:>14,.0f}{seconds / base:>12.1f}"
            f"{'' if flagged is None else flagged:>10}"
        )


if __name__ == "__main__":
    main()
