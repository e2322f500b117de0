"""One detect-metrics tick for N detectors against the real Prometheus, next to an empty flow run.

Starts Debian's Prometheus on 127.0.0.1 with six hours of known history and a Prefect server
in its own process (`python -m prefect server start`, SQLite under a temporary PREFECT_HOME,
as `aiops up` runs it; `--server harness` uses the in-process test harness instead), creates
N running detectors (distinct queries, so no collection is served from another's cache; with
`--series 10` each query returns 10 series), and times the tick from its start to the last
anomaly stored. In the same run it times an empty Prefect flow run, the orchestration floor,
and prints this process's peak RSS (the tick runs here, as a worker's flow run would).

    .venv/bin/python benchmarks/pipeline.py [--detectors 100] [--series 1] [--server own|harness]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def wide_series(n: int) -> list:
    """``aiops_bench_wide{shard="0".."n-1"}``: flat with jitter, one spike per shard."""
    from tests.support.prometheus import SPIKE_INDEX, SeriesSpec

    return [
        SeriesSpec(
            "aiops_bench_wide",
            {"shard": str(k)},
            lambda i, k=k: (
                10.0 + 0.1 * ((i * 7919 + k) % 13) / 13 + (5.0 if i == SPIKE_INDEX + k else 0.0)
            ),
        )
        for k in range(n)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detectors", type=int, default=100)
    parser.add_argument("--series", type=int, default=1, help="series per detector (1 or more)")
    parser.add_argument("--server", choices=("own", "harness"), default="own")
    args = parser.parse_args()

    from tests.support.prometheus import build_history, default_series, run_prometheus

    series = default_series() + (wide_series(args.series) if args.series > 1 else [])
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        prom = stack.enter_context(run_prometheus(Path(tmp) / "prom", build_history(series=series)))
        os.environ["AIOPS_PROMETHEUS_URL"] = prom.url
        os.environ["AIOPS_DATABASE_URL"] = f"sqlite:///{tmp}/aiops.db"
        if args.server == "own":
            from benchmarks._servers import prefect_server

            os.environ["PREFECT_API_URL"] = stack.enter_context(
                prefect_server(Path(tmp) / "prefect")
            )
        else:
            from prefect.testing.utilities import prefect_test_harness

            stack.enter_context(prefect_test_harness(server_startup_timeout=120))
        from prefect import flow

        from benchmarks._servers import peak_rss_mb, rss_mb
        from flows.metrics import detect_metrics
        from tasks._runtime import store

        @flow(name="empty")
        async def empty() -> int:
            return 0

        db = store()
        for k in range(args.detectors):
            query = (
                f'aiops_test_anomaly{{instance="a"}} + {k}'
                if args.series == 1
                else f"aiops_bench_wide + {k}"
            )
            db.create_detector(
                {
                    "id": f"bench-{k:04d}",
                    "name": f"bench {k}",
                    "kind": "zscore",
                    "params": {"window": 40},
                    "status": "running",
                    "datasource": {"query": query, "step": 15, "lookback": 6 * 3600},
                }
            )
        empties = []
        for _ in range(5):
            t = time.perf_counter()
            asyncio.run(empty())
            empties.append(time.perf_counter() - t)
        now = datetime.fromtimestamp(prom.history.end + prom.history.step, UTC)
        rss_before = rss_mb()
        cpu_before = time.process_time()
        t = time.perf_counter()
        summary = asyncio.run(detect_metrics(now=now))
        tick = time.perf_counter() - t
        cpu_tick = time.process_time() - cpu_before
        rss_after = rss_mb()
        from aiops import scoring

        pool_pids = scoring.worker_pids()
        pool_rss = peak_rss_mb(pool_pids)
        anomalies = db.list_anomalies(limit=10_000)
        stored = len(anomalies)
        last = max((a.created_at for a in anomalies), default=None)
    empty_s = statistics.median(empties)
    points = summary["ok"] * prom.history.points * args.series
    server = "own process" if args.server == "own" else "in-process test harness"
    print(
        f"detect-metrics tick: {args.detectors} detectors x {args.series} series x "
        f"{prom.history.points} points (Prefect server: {server})"
    )
    print(f"{'run':<40}{'seconds':>10}")
    print(f"{'empty Prefect flow run (median of 5)':<40}{empty_s:>10.3f}")
    print(f"{'tick, start to last anomaly stored':<40}{tick:>10.3f}")
    print(
        f"detectors ok: {summary['ok']}, failed: {summary['failed']}, anomalies stored: {stored}"
        f" (last at {last:%H:%M:%S})"
        if last
        else ""
    )
    print(
        f"per detector: {tick / max(1, args.detectors) * 1000:.1f} ms; "
        f"points scored/s: {points / tick:,.0f}"
    )
    print(f"ratio tick / empty flow run: {tick / empty_s:.1f}x")
    print(
        f"CPU of this process during the tick: {cpu_tick:.2f} s ({cpu_tick / tick:.2f} of one "
        "core; the Prefect server, Prometheus and scoring workers are other processes)"
    )
    print(f"peak RSS of this process: {rss_after:.0f} MiB (before the tick: {rss_before:.0f} MiB)")
    print(
        f"scoring pool: {max(0, len(pool_pids) - 1)} workers and their fork server, peak RSS "
        f"{pool_rss:.0f} MiB together; with this process {rss_after + pool_rss:.0f} MiB"
    )


if __name__ == "__main__":
    main()
