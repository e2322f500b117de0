"""Backfill end to end (Prometheus -> store) next to a raw fetch + decode of the same windows.

Generates N series x D days at a 60 s step (a daily shape, noise and a few spikes), loads it
into Debian's Prometheus with promtool, starts a temporary Prefect server, and in the same
run times:

* **baseline**: for every window, ``GET /api/v1/query_range`` with httpx and ``json.loads``
  (the least any backfill must do), and
* **backfill**: the real ``backfill`` flow over the same range and windows with a zscore
  detector: collect, transform, score, commit events and model states per window to SQLite.

    .venv/bin/python benchmarks/backfill.py [--series 100] [--days 30] [--window 1d]

Prints samples/s for both, the ratio (goal <= 1.5x) and the peak RSS of this process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiops.backfill import plan_windows  # noqa: E402
from aiops.localprom import Family, load_history, run_prometheus  # noqa: E402
from aiops.timeutil import parse_duration  # noqa: E402

STEP = 60
START = 0  # Unix seconds of sample 0, set by main()


def value(k: int, i: int) -> float:
    """Series k at sample i: a daily wave, deterministic noise and a spike every ~5 days."""
    wave = 100 + 20 * math.sin(2 * math.pi * (i % 1440) / 1440 + k)
    noise = ((i * 7919 + k * 104729) % 1000) / 100.0
    spike = 80.0 if (i + 97 * k) % 7001 == 0 else 0.0
    return round(wave + noise + spike, 3)


def families(series: int, points: int) -> Iterator[Family]:
    def samples(k: int) -> Iterator[tuple[float, float]]:
        return ((START + i * STEP, value(k, i)) for i in range(points))

    yield Family("bench_backfill", "gauge", [({"instance": f"host-{k:03d}"}, samples(k)) for k in range(series)])


async def baseline(url: str, windows: list[tuple[datetime, datetime]]) -> tuple[float, int]:
    samples = 0
    t = time.perf_counter()
    async with httpx.AsyncClient(timeout=300) as http:
        for lo, hi in windows:
            first = math.ceil(lo.timestamp() / STEP) * STEP
            last = math.ceil(hi.timestamp() / STEP) * STEP - STEP
            params = {"query": "bench_backfill", "start": first, "end": last, "step": STEP}
            body = json.loads((await http.get(url + "/api/v1/query_range", params=params)).content)
            samples += sum(len(s["values"]) for s in body["data"]["result"])
    return time.perf_counter() - t, samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=100)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--window", default="1d")
    args = parser.parse_args()

    global START
    points = int(args.days * 86400 // STEP)
    end = int(time.time() // 3600) * 3600 - 3600  # a whole hour, an hour ago
    start = START = end - points * STEP
    range_start, range_end = datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)
    windows = plan_windows(range_start, range_end, parse_duration(args.window))

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        written = load_history(families(args.series, points), work / "prom" / "data", work / "om")
        print(f"loaded {written:,} samples ({args.series} series x {points:,} points) in {time.perf_counter() - t:.0f} s")

        with run_prometheus(work / "prom", data_dir=work / "prom" / "data", ready_timeout=600) as prom:
            os.environ["AIOPS_PROMETHEUS_URL"] = prom.url
            os.environ["AIOPS_DATABASE_URL"] = f"sqlite:///{work}/aiops.db"
            os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
            from prefect.logging import disable_run_logger
            from prefect.testing.utilities import prefect_test_harness

            from flows.backfill import backfill
            from tasks._runtime import store

            asyncio.run(baseline(prom.url, windows[:1]))  # warm Prometheus' caches once
            base_s, base_samples = asyncio.run(baseline(prom.url, windows))
            with prefect_test_harness(server_startup_timeout=120), disable_run_logger():
                db = store()
                db.create_detector({
                    "id": "bench", "name": "bench", "kind": "zscore", "status": "paused",
                    "datasource": {"query": "bench_backfill", "step": STEP, "lookback": 3600},
                })
                t = time.perf_counter()
                result = asyncio.run(backfill(["bench"], range_start, range_end, window=args.window))
                flow_s = time.perf_counter() - t
            base2_s, _ = asyncio.run(baseline(prom.url, windows))  # again, after: the machine may drift
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row = result["detectors"][0]
    base = min(base_s, base2_s)
    print(f"backfill: {args.series} series x {args.days:g} days at {STEP} s, {len(windows)} windows of {args.window}")
    print(f"{'path':<46}{'seconds':>10}{'samples/s':>14}")
    print(f"{'baseline: httpx + json.loads per window':<46}{base:>10.2f}{base_samples / base:>14,.0f}")
    print(f"{'backfill flow: Prometheus -> store':<46}{flow_s:>10.2f}{row['samples'] / flow_s:>14,.0f}")
    print(f"windows done {result['progress']['done']}/{result['progress']['total']}, samples {row['samples']:,} "
          f"(baseline {base_samples:,}), anomalies stored {result['anomalies']}, largest piece {row['max_piece_samples']:,} samples")
    print(f"ratio (backfill time / baseline time): {flow_s / base:.2f}x  (goal <= 1.5x)")
    print(f"peak RSS of this process: {rss_mb:,.0f} MB")


if __name__ == "__main__":
    main()
