"""Incident opened -> triage report stored, through the real pieces (goal: <= 30 s).

Starts a Prefect server (as `aiops up` does), the Loki stand-in over HTTP with a baseline and
an incident window of lines, and a runner process serving `analyze-logs` with the triage
automation (what `aiops serve` does for that deployment; the runner polls the server every
PREFECT_RUNNER_POLL_FREQUENCY seconds, 10 by default as in `aiops serve`). Then, per incident:
store it and emit `aiops.incident.opened` as the detection flow does, and time until the
triage is stored. Prints each incident's time, split into event -> run created (the
automation), -> run started (the runner's poll and the flow run's process) and -> stored.

    .venv/bin/python benchmarks/triage.py [--incidents 5] [--lines 5000] [--poll 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._servers import prefect_server  # noqa: E402
from tests.support.prometheus import free_port  # noqa: E402

NS = 10**9


def serve_fake_loki(lines: int, now: datetime) -> tuple[str, object]:
    import uvicorn

    from tests.support.fakeloki import FakeLoki

    fake = FakeLoki()
    stream = {"app": "checkout", "level": "info"}
    start = now - timedelta(hours=1)
    for i in range(lines):  # an hour of ordinary lines, then errors in the last two minutes
        ns = int((start + timedelta(seconds=3600 * i / lines)).timestamp() * NS)
        fake.add(stream, ns, f"GET /cart/{i} served in {20 + i % 5}ms")
    for i in range(200):
        ns = int((now - timedelta(seconds=120) + timedelta(seconds=0.5 * i)).timestamp() * NS)
        fake.add(
            stream,
            ns,
            f"ERROR java.net.SocketTimeoutException: Read timed out talking to payments-{i % 3}",
        )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(fake.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--incidents", type=int, default=5)
    parser.add_argument(
        "--lines", type=int, default=5000, help="Loki lines in the hour before the incident"
    )
    parser.add_argument(
        "--poll", type=float, default=10.0, help="PREFECT_RUNNER_POLL_FREQUENCY of the runner"
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="aiops-triage-bench-"))
    now = datetime.now(UTC).replace(microsecond=0)
    loki_url, loki = serve_fake_loki(args.lines, now)
    db_url = f"sqlite:///{tmp / 'aiops.db'}"
    with prefect_server(tmp / "prefect") as api_url:
        env = {
            **os.environ,
            "PREFECT_API_URL": api_url,
            "AIOPS_DATABASE_URL": db_url,
            "AIOPS_LOKI_URL": loki_url,
            "PREFECT_RUNNER_POLL_FREQUENCY": str(args.poll),
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "AIOPS_CONFIG_FILE": "",
        }
        os.environ.update(
            {k: env[k] for k in ("PREFECT_API_URL", "AIOPS_DATABASE_URL", "AIOPS_LOKI_URL")}
        )
        os.environ.pop("AIOPS_CONFIG_FILE", None)
        env.pop("AIOPS_CONFIG_FILE")
        runner = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from flows.logs import analyze_logs, triage_trigger\n"
                "analyze_logs.serve(name='default', triggers=[triage_trigger()], limit=4)",
            ],
            cwd=ROOT,
            env=env,
            stdout=open(tmp / "runner.log", "w"),
            stderr=subprocess.STDOUT,  # noqa: SIM115
        )
        try:
            return run(args, tmp, now)
        finally:
            runner.terminate()
            runner.wait(timeout=30)
            loki.should_exit = True


def run(args: argparse.Namespace, tmp: Path, now: datetime) -> int:
    import asyncio

    from prefect import get_client
    from prefect.events.worker import EventsWorker

    from aiops.errors import NotFound
    from aiops.store import Store
    from flows.logs import TRIAGE_TRIGGER
    from tasks.publish import emit_incidents
    from tests.support.incidents import inject_incident

    async def automation_ready() -> bool:
        async with get_client() as client:
            return any(a.name == TRIAGE_TRIGGER for a in await client.read_automations())

    deadline = time.monotonic() + 120
    while not asyncio.run(automation_ready()):
        if time.monotonic() > deadline:
            print("the runner did not create the automation: see", tmp / "runner.log")
            return 1
        time.sleep(0.5)

    store = Store.open(os.environ["AIOPS_DATABASE_URL"])
    detector = store.create_detector(
        {
            "id": "checkout-errors",
            "kind": "zscore",
            "status": "running",
            "triage": {"selector": '{app="$service"}', "lead": "2m", "baselines": ["previous"]},
        }
    )
    rows = []
    for n in range(args.incidents):
        labels = {"service": "checkout", "instance": f"i{n}"}
        opened = now - timedelta(seconds=60)
        inserted = inject_incident(store, detector.id, labels, opened, value=1.0, expected=0.1)
        incident = next(e.payload["incident_id"] for e in inserted if e.type == "incident.opened")
        t0 = time.monotonic()
        emit_incidents(detector, inserted)
        EventsWorker.drain_all()
        while True:
            try:
                triage = store.get_triage(incident)
                if triage.status != "running":
                    break
            except NotFound:
                pass
            if time.monotonic() - t0 > 300:
                print(f"incident {incident}: no triage after 300 s: see {tmp / 'runner.log'}")
                return 1
            time.sleep(0.1)
        total = time.monotonic() - t0

        async def phases(run_id: str) -> tuple[float, float]:
            async with get_client() as client:
                fr = await client.read_flow_run(run_id)
            return fr.created.timestamp(), fr.start_time.timestamp()

        created, started = asyncio.run(phases(triage.flow_run_id))
        stored = triage.updated_at.timestamp()
        emitted = stored - total
        rows.append(
            (
                incident,
                triage.status,
                total,
                created - emitted,
                started - created,
                stored - started,
                triage.summary,
            )
        )
    store.close()
    print(
        f"incident opened -> triage stored (runner poll {args.poll:g} s, {args.lines} baseline "
        "lines)"
    )
    print(
        f"{'incident':>8} {'status':>7} {'total s':>8} {'->run s':>8} {'->start s':>9} "
        f"{'->stored s':>10}  summary"
    )
    for r in rows:
        print(f"{r[0]:>8} {r[1]:>7} {r[2]:>8.1f} {r[3]:>8.1f} {r[4]:>9.1f} {r[5]:>10.1f}  {r[6]}")
    totals = [r[2] for r in rows]
    print(f"median {statistics.median(totals):.1f} s, max {max(totals):.1f} s (goal <= 30 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
