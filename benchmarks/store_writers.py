"""Concurrent writers on one SQLite store: no acknowledged write lost (docs/reliability.md).

A real API process (``aiops api``) over a SQLite file; C HTTP clients doing detector CRUD at
once (create, change the threshold, read it back, delete every third), and W separate
processes inserting anomaly events into the same file (as flow runs do). Every write the API
answered with 2xx, and every event id an insert returned, must be in the store at the end, as
acknowledged: a lost write is one that was acknowledged and is not there (or not as written).

    .venv/bin/python benchmarks/store_writers.py --clients 32 --rounds 40 --writers 4 --events 1100

``tests/api/test_store_writers.py`` runs it scaled down on every change.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiops.store import Store  # noqa: E402
from benchmarks.ws_restarts import ApiProcess, free_port  # noqa: E402

__all__ = ["run"]


def _insert_events(db_url: str, writer: int, events: int, batch: int) -> list[int]:
    base = datetime(2026, 1, 1, tzinfo=UTC).timestamp() + writer * 10_000_000
    ids: list[int] = []
    with Store.open(db_url) as db:
        for start in range(0, events, batch):
            rows = [
                {
                    "type": "anomaly",
                    "detector_id": "events",
                    "labels": {"writer": str(writer)},
                    "ts": datetime.fromtimestamp(base + i, UTC),
                    "value": float(i),
                    "score": 2.0,
                }
                for i in range(start, min(events, start + batch))
            ]
            ids.extend(e.id for e in db.insert_events(rows))
    return ids


async def _crud(
    client: httpx.AsyncClient, c: int, rounds: int, acked: dict[str, Any], statuses: Counter
) -> None:
    for k in range(rounds):
        det = f"w{c}-{k}"
        r = await client.post(
            "/api/detectors", json={"id": det, "kind": "zscore", "threshold": 1.5}
        )
        statuses[r.status_code] += 1
        if r.status_code != 201:
            continue
        acked[det] = 1.5
        threshold = 2.0 + (k % 7)
        r = await client.patch(f"/api/detectors/{det}", json={"threshold": threshold})
        statuses[r.status_code] += 1
        if r.status_code == 200:
            acked[det] = threshold
        r = await client.get(f"/api/detectors/{det}")
        statuses[r.status_code] += 1
        if r.status_code == 200 and r.json()["threshold"] != acked[det]:
            statuses["read_mismatch"] += 1
        if k % 3 == 2:
            r = await client.delete(f"/api/detectors/{det}")
            statuses[r.status_code] += 1
            if r.status_code == 204:
                acked[det] = None


async def _run(
    clients: int, rounds: int, writers: int, events: int, batch: int, workdir: Path
) -> dict[str, Any]:
    db_url = f"sqlite:///{workdir / 'aiops.db'}"
    with Store.open(db_url) as db:
        db.create_detector({"id": "events", "kind": "zscore"})
    api = ApiProcess(db_url, free_port(), workdir / "api.log")
    api.start()
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--insert", db_url, str(w), str(events), str(batch)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for w in range(writers)
    ]
    acked: dict[str, Any] = {}
    statuses: Counter = Counter()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{api.port}", timeout=120, limits=limits
    ) as client:
        await asyncio.gather(*(_crud(client, c, rounds, acked, statuses) for c in range(clients)))
    inserted: list[int] = []
    for p in procs:
        out, _ = await asyncio.to_thread(p.communicate, timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"an event writer failed with {p.returncode}")
        inserted.extend(json.loads(out))
    api.stop(signal.SIGTERM)
    with Store.open(db_url) as db:
        stored = {d.id: d.threshold for d in db.list_detectors()}
        ids: list[int] = []
        after = 0
        while True:
            page = db.events_after(after, 10_000)
            ids.extend(e.id for e in page)
            if len(page) < 10_000:
                break
            after = page[-1].id
    lost_crud = sum(1 for det, want in acked.items() if stored.get(det) != want)
    lost_events = len(set(inserted) - set(ids))
    return {
        "crud_requests": sum(v for k, v in statuses.items() if isinstance(k, int)),
        "statuses": {str(k): v for k, v in sorted(statuses.items(), key=str)},
        "server_errors": sum(v for k, v in statuses.items() if isinstance(k, int) and k >= 500),
        "event_inserts": len(inserted),
        "lost_writes": lost_crud + lost_events,
        "lost_crud_writes": lost_crud,
        "lost_events": lost_events,
        "duplicate_event_ids": len(inserted) - len(set(inserted)),
    }


def run(
    clients: int = 32,
    rounds: int = 40,
    writers: int = 4,
    events: int = 1100,
    *,
    batch: int = 10,
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Run the scenario; returns its figures (``lost_writes`` must be 0)."""
    if workdir is not None:
        return asyncio.run(_run(clients, rounds, writers, events, batch, workdir))
    with tempfile.TemporaryDirectory(prefix="aiops-store-writers-") as tmp:
        return asyncio.run(_run(clients, rounds, writers, events, batch, Path(tmp)))


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--insert":  # one event writer process
        db_url, writer, events, batch = (
            sys.argv[2],
            int(sys.argv[3]),
            int(sys.argv[4]),
            int(sys.argv[5]),
        )
        print(json.dumps(_insert_events(db_url, writer, events, batch)))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--clients", type=int, default=32, help="concurrent HTTP clients doing CRUD"
    )
    parser.add_argument(
        "--rounds", type=int, default=40, help="detectors each client creates (3-4 requests each)"
    )
    parser.add_argument("--writers", type=int, default=4, help="event writer processes")
    parser.add_argument("--events", type=int, default=1100, help="events per writer")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.clients, args.rounds, args.writers, args.events)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['crud_requests']} concurrent CRUD requests ({result['server_errors']} 5xx) "
            f"and {result['event_inserts']} event inserts from {args.writers} processes: "
            f"{result['lost_writes']} lost writes, {result['duplicate_event_ids']} duplicate ids; "
            f"statuses {result['statuses']}"
        )
    return (
        0
        if result["lost_writes"] == result["server_errors"] == result["duplicate_event_ids"] == 0
        else 1
    )


if __name__ == "__main__":
    sys.exit(main())
