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

With ``--dask-workers N`` (a ``distributed.LocalCluster`` of N single-threaded worker
processes on 127.0.0.1) or ``--dask-address tcp://HOST:PORT`` (an existing cluster whose
workers see this run's store and Prometheus), the same backfill also runs through the cluster
(``AIOPS_DASK_ADDRESS``) on a fresh store, and the script prints its samples/s and the
ratio to the in-process run. ``--detectors K`` splits the series over K detectors (the unit a
Dask cluster runs side by side: one window x a group of detectors); both runs first do a
one-window warm-up backfill (imports, JIT) that is not timed.

    .venv/bin/python benchmarks/backfill.py --days 7 --detectors 4 --dask-workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from aiops.timeutil import parse_seconds  # noqa: E402

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

    yield Family(
        "bench_backfill",
        "gauge",
        [({"instance": f"host-{k:03d}"}, samples(k)) for k in range(series)],
    )


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
    parser.add_argument(
        "--detectors", type=int, default=1, help="split the series over this many detectors"
    )
    parser.add_argument(
        "--dask-workers",
        type=int,
        help="also run through a LocalCluster of this many worker processes",
    )
    parser.add_argument(
        "--dask-address", help="also run through the Dask cluster at this scheduler address"
    )
    args = parser.parse_args()
    dask = args.dask_address or args.dask_workers

    global START
    points = int(args.days * 86400 // STEP)
    end = int(time.time() // 3600) * 3600 - 3600  # a whole hour, an hour ago
    start = START = end - points * STEP
    range_start, range_end = datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)
    windows = plan_windows(range_start, range_end, parse_seconds(args.window))

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        written = load_history(families(args.series, points), work / "prom" / "data", work / "om")
        print(
            f"loaded {written:,} samples ({args.series} series x {points:,} points) in "
            f"{time.perf_counter() - t:.0f} s"
        )

        with run_prometheus(
            work / "prom", data_dir=work / "prom" / "data", ready_timeout=600
        ) as prom:
            os.environ["AIOPS_PROMETHEUS_URL"] = prom.url
            os.environ["AIOPS_DATABASE_URL"] = f"sqlite:///{work}/aiops.db"
            os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
            from prefect.logging import disable_run_logger
            from prefect.testing.utilities import prefect_test_harness

            from flows.backfill import backfill
            from tasks._runtime import store

            asyncio.run(baseline(prom.url, windows[:1]))  # warm Prometheus' caches once
            base_s, base_samples = asyncio.run(baseline(prom.url, windows))
            detectors = [f"bench-{k}" for k in range(args.detectors)]

            def run(db_name: str) -> tuple[float, dict]:
                """Create the detectors in a fresh store, warm up on one window, time the
                backfill."""
                os.environ["AIOPS_DATABASE_URL"] = f"sqlite:///{work}/{db_name}"
                db = store()
                for k, det_id in enumerate(detectors):
                    mine = "|".join(
                        f"host-{i:03d}" for i in range(args.series) if i % args.detectors == k
                    )
                    query = (
                        "bench_backfill"
                        if args.detectors == 1
                        else f'bench_backfill{{instance=~"{mine}"}}'
                    )
                    db.create_detector(
                        {
                            "id": det_id,
                            "name": det_id,
                            "kind": "zscore",
                            "status": "paused",
                            "datasource": {"query": query, "step": STEP, "lookback": 3600},
                        }
                    )
                warm_end = datetime.fromtimestamp(min(end, start + 3600 * 6), UTC)
                asyncio.run(
                    backfill(detectors, range_start, warm_end, window="1h", backfill_id="warm-up")
                )
                t = time.perf_counter()
                result = asyncio.run(
                    backfill(detectors, range_start, range_end, window=args.window)
                )
                return time.perf_counter() - t, result

            with prefect_test_harness(server_startup_timeout=120), disable_run_logger():
                flow_s, result = run("aiops.db")
                dask_s = dask_result = None
                if dask:
                    os.environ["AIOPS_DATABASE_URL"] = (
                        f"sqlite:///{work}/aiops-dask.db"  # the workers inherit it
                    )
                    with contextlib.ExitStack() as stack:
                        address = args.dask_address
                        if address is None:
                            from distributed import LocalCluster

                            cluster = stack.enter_context(
                                LocalCluster(
                                    n_workers=args.dask_workers,
                                    threads_per_worker=1,
                                    processes=True,
                                    host="127.0.0.1",
                                    dashboard_address=None,
                                )
                            )
                            address = cluster.scheduler_address
                        os.environ["AIOPS_DASK_ADDRESS"] = address
                        try:
                            dask_s, dask_result = run("aiops-dask.db")
                        finally:
                            del os.environ["AIOPS_DASK_ADDRESS"]
            base2_s, _ = asyncio.run(
                baseline(prom.url, windows)
            )  # again, after: the machine may drift
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    samples = sum(r["samples"] for r in result["detectors"])
    base = min(base_s, base2_s)
    print(
        f"backfill: {args.series} series x {args.days:g} days at {STEP} s, {len(windows)} windows "
        f"of {args.window}, {args.detectors} detector(s)"
    )
    print(f"{'path':<46}{'seconds':>10}{'samples/s':>14}")
    print(
        f"{'baseline: httpx + json.loads per window':<46}{base:>10.2f}{base_samples / base:>14,.0f}"
    )
    print(f"{'backfill flow: Prometheus -> store':<46}{flow_s:>10.2f}{samples / flow_s:>14,.0f}")
    if dask_result is not None:
        label = (
            f"backfill flow on Dask ({args.dask_workers} workers)"
            if args.dask_address is None
            else "backfill flow on Dask"
        )
        dask_samples = sum(r["samples"] for r in dask_result["detectors"])
        print(f"{label:<46}{dask_s:>10.2f}{dask_samples / dask_s:>14,.0f}")
    print(
        f"windows done {result['progress']['done']}/{result['progress']['total']}, samples "
        f"{samples:,} (baseline {base_samples:,}), anomalies stored {result['anomalies']}, "
        f"largest piece {max(r['max_piece_samples'] for r in result['detectors']):,} samples"
    )
    print(f"ratio (backfill time / baseline time): {flow_s / base:.2f}x  (goal <= 1.5x)")
    if dask_result is not None:
        same = (dask_result["anomalies"], dask_result["progress"]["done"]) == (
            result["anomalies"],
            result["progress"]["done"],
        )
        print(
            "Dask: windows done "
            f"{dask_result['progress']['done']}/{dask_result['progress']['total']}, anomalies "
            f"stored {dask_result['anomalies']} ({'same as' if same else 'DIFFERENT FROM'} "
            "in-process)"
        )
        print(f"ratio (Dask throughput / in-process throughput): {flow_s / dask_s:.2f}x")
    print(f"peak RSS of this process: {rss_mb:,.0f} MB")


if __name__ == "__main__":
    main()
