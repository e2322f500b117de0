"""One detect-metrics tick for N detectors against the real Prometheus, next to an empty flow run.

Starts Debian's Prometheus on 127.0.0.1 with six hours of known history and a temporary
Prefect server (prefect_test_harness), creates N running detectors (distinct queries, so no
collection is served from another's cache), and times the tick from its start to the last
anomaly stored. In the same run it times an empty Prefect flow run, the orchestration floor.

    .venv/bin/python benchmarks/pipeline.py [--detectors 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detectors", type=int, default=100)
    args = parser.parse_args()

    from tests.support.prometheus import build_history, run_prometheus

    with tempfile.TemporaryDirectory() as tmp, run_prometheus(Path(tmp) / "prom", build_history()) as prom:
        os.environ["AIOPS_PROMETHEUS_URL"] = prom.url
        os.environ["AIOPS_DATABASE_URL"] = f"sqlite:///{tmp}/aiops.db"
        from prefect import flow
        from prefect.logging import disable_run_logger
        from prefect.testing.utilities import prefect_test_harness

        from flows.metrics import detect_metrics
        from tasks._runtime import store

        @flow(name="empty")
        async def empty() -> int:
            return 0

        with prefect_test_harness(server_startup_timeout=120), disable_run_logger():
            db = store()
            for k in range(args.detectors):
                db.create_detector(
                    {
                        "id": f"bench-{k:03d}",
                        "name": f"bench {k}",
                        "kind": "zscore",
                        "params": {"window": 40},
                        "status": "running",
                        "datasource": {"query": f'aiops_test_anomaly{{instance="a"}} + {k}', "step": 15, "lookback": 6 * 3600},
                    }
                )
            empties = []
            for _ in range(5):
                t = time.perf_counter()
                asyncio.run(empty())
                empties.append(time.perf_counter() - t)
            now = datetime.fromtimestamp(prom.history.end + prom.history.step, UTC)
            t = time.perf_counter()
            summary = asyncio.run(detect_metrics(now=now))
            tick = time.perf_counter() - t
            last = max(a.created_at for a in db.list_anomalies(limit=1000))
            stored = len(db.list_anomalies(limit=1000))
    empty_s = statistics.median(empties)
    points = summary["ok"] * prom.history.points
    print(f"detect-metrics tick: {args.detectors} detectors x {prom.history.points} points (1 series each)")
    print(f"{'run':<40}{'seconds':>10}")
    print(f"{'empty Prefect flow run (median of 5)':<40}{empty_s:>10.3f}")
    print(f"{'tick, start to last anomaly stored':<40}{tick:>10.3f}")
    print(f"detectors ok: {summary['ok']}, failed: {summary['failed']}, anomalies stored: {stored} (last at {last:%H:%M:%S})")
    print(f"per detector: {tick / max(1, args.detectors) * 1000:.1f} ms; points scored/s: {points / tick:,.0f}")
    print(f"ratio tick / empty flow run: {tick / empty_s:.1f}x")


if __name__ == "__main__":
    main()
