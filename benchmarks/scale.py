"""Detectors processed per second by detect-metrics with 1 and with 2 workers on this machine.

Starts Debian's Prometheus (six hours of history), a throw-away PostgreSQL cluster holding the
store and the Prefect server's database, a Prefect server in its own process on it, and N
running detectors. Each worker is a real process running detect-metrics flow runs
(tests/support/tick_worker.py, as a process worker's flow run would). Per configuration: a
fresh set of detectors, then one tick run by every worker at once (all claim from the same
due set); detectors/s = N / the wall time of the tick. Also prints CPU seconds used by the
workers, Prometheus, PostgreSQL and the Prefect server during the tick, to say where the limit is.

    .venv/bin/python benchmarks/scale.py [--detectors 400]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def cpu_seconds(pids: list[int]) -> float:
    """User+system CPU of these processes and their children still alive (from /proc)."""
    from aiops.supervisor import descendants

    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in {p for root in pids for p in [root, *descendants(root)]}:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detectors", type=int, default=400)
    args = parser.parse_args()

    from aiops.store import Store
    from benchmarks._servers import prefect_server
    from tests.flows.test_scale_out import Worker
    from tests.support.postgres import create_database, run_postgres
    from tests.support.prometheus import build_history, run_prometheus

    results = []
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        prom = stack.enter_context(run_prometheus(Path(tmp) / "prom", build_history()))
        pgdir = Path(tempfile.mkdtemp(prefix="aiops-pg-bench-"))
        server = stack.enter_context(run_postgres(pgdir))
        prefect_db = create_database(server, "prefect").replace(
            "postgresql+psycopg://", "postgresql+asyncpg://"
        )
        api = stack.enter_context(prefect_server(Path(tmp) / "prefect", database_url=prefect_db))
        pg_pid = int(next((pgdir / "data").glob("postmaster.pid")).read_text().split()[0])
        prefect_pids = [
            int(p)
            for p in os.popen(f"pgrep -f 'prefect server start.*{api.split(':')[2].split('/')[0]}'")
            .read()
            .split()
        ]
        h = prom.history
        for workers_n in (1, 2):
            url = create_database(server, f"store{workers_n}")
            db = Store.open(url)
            for k in range(args.detectors):
                db.create_detector(
                    {
                        "id": f"bench-{k:04d}",
                        "name": f"bench {k}",
                        "kind": "zscore",
                        "params": {"window": 40},
                        "status": "running",
                        "datasource": {
                            "query": f'aiops_test_anomaly{{instance="a"}} + {k}',
                            "step": 15,
                            "lookback": 6 * 3600,
                        },
                    }
                )
            env = {
                **os.environ,
                "PREFECT_API_URL": api,
                "PREFECT_LOGGING_LEVEL": "WARNING",
                "AIOPS_DATABASE_URL": url,
                "AIOPS_PROMETHEUS_URL": prom.url,
                "AIOPS_DATA_DIR": str(Path(tmp) / "data"),
            }
            workers = [Worker(env) for _ in range(workers_n)]
            pids = {
                "workers": [w.proc.pid for w in workers],
                "prometheus": [prom.process.pid],
                "postgresql": [pg_pid],
                "prefect server": prefect_pids,
            }
            before = {k: cpu_seconds(v) for k, v in pids.items()}
            t = time.perf_counter()
            for w in workers:
                w.tick(h.end + h.step)
            outcomes = [w.read(timeout=1800) for w in workers]
            wall = time.perf_counter() - t
            cpu = {k: cpu_seconds(v) - before[k] for k, v in pids.items()}
            for w in workers:
                w.stop()
            ok = sum(1 for o in outcomes for _, status, _ in o["rows"] if status == "ok")
            results.append((workers_n, ok, wall, [len(o["rows"]) for o in outcomes], cpu))
            db.close()
    print(
        f"detect-metrics, {args.detectors} detectors x 1 series x {h.points} points, store and "
        "Prefect server on PostgreSQL"
    )
    for n, ok, wall, shares, cpu in results:
        print(
            f"{n} worker(s): {ok} ok in {wall:.1f} s = {ok / wall:.1f} detectors/s (per worker: "
            f"{shares}); CPU s during the tick: "
            + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items())
        )
    if len(results) == 2:
        print(
            "ratio 2 workers / 1 worker: "
            f"{results[1][1] / results[1][2] / (results[0][1] / results[0][2]):.2f}x"
        )


if __name__ == "__main__":
    main()
