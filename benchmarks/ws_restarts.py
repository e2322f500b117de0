"""WebSocket resume across API restarts: no event missed, none doubled (docs/reliability.md).

A real API process (``aiops api``) over a SQLite store; a writer inserting anomaly events into
the store the whole time (as flow runs do, from another connection); N WebSocket clients that
resume with ``?since=<last id received>`` after every disconnect; the API stopped R times,
alternately with SIGTERM and SIGKILL, and started again. At the end every client must hold
every event id exactly once, in order.

    .venv/bin/python benchmarks/ws_restarts.py --clients 50 --restarts 5
    .venv/bin/python benchmarks/ws_restarts.py --clients 100 --restarts 5 --json

``tests/api/test_ws_restarts.py`` runs it scaled down on every change.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiops.store import Store  # noqa: E402

__all__ = ["run", "ApiProcess", "free_port"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ApiProcess:
    """``aiops api`` in a subprocess, restartable on the same port."""

    def __init__(self, db_url: str, port: int, log: Path, **extra_env: str) -> None:
        self.port = port
        self.log = log
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AIOPS_", "PREFECT_"))}
        self.env.update(
            AIOPS_DATABASE_URL=db_url,
            AIOPS_PROMETHEUS_URL=f"http://127.0.0.1:{free_port()}",
            AIOPS_API_PORT=str(port),
            AIOPS_LOG_LEVEL="WARNING",
        )
        self.env.update(extra_env)
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> None:
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "aiops.cli", "api"],
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            try:
                code = self.proc.wait(timeout=0.1)  # the pause between polls; notices an early exit
            except subprocess.TimeoutExpired:
                continue
            raise RuntimeError(f"the API exited with {code}: {self.log.read_text()[-2000:]}")
        raise RuntimeError(f"the API was not ready after {timeout:.0f}s")

    def stop(self, sig: int, timeout: float = 30.0) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def _writer(
    db_url: str,
    stop: threading.Event,
    written: list[int],
    batch: int,
    pause: float,
    errors: list[BaseException],
) -> None:
    """Insert ``batch`` events at a time until ``stop``; the ids committed go to ``written``."""
    base = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    try:
        with Store.open(db_url) as db:
            n = 0
            while not stop.wait(pause):
                rows = [
                    {
                        "type": "anomaly",
                        "detector_id": "det-a",
                        "labels": {"instance": "a"},
                        "ts": datetime.fromtimestamp(base + n + i, UTC),
                        "value": 1.0,
                        "score": 2.0,
                    }
                    for i in range(batch)
                ]
                n += batch
                written.extend(e.id for e in db.insert_events(rows))
    except BaseException as exc:  # surfaced by the main loop
        errors.append(exc)


async def _until(condition: Any, timeout: float, what: str, errors: list[BaseException]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if errors:
            raise RuntimeError(f"the event writer failed: {errors[0]!r}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not reached within {timeout:.0f}s")
        await asyncio.sleep(0.05)


async def _client(
    port: int, received: list[int], done: asyncio.Event, stats: dict[str, int]
) -> None:
    """Receive events, resuming with ?since=<last id> after any disconnect, until ``done``."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

    while not done.is_set():
        since = received[-1] if received else 0
        url = f"ws://127.0.0.1:{port}/api/events/ws?since={since}&anomalies=true"
        try:
            async with connect(url, open_timeout=10, close_timeout=2) as ws:
                stats["connects"] += 1
                while not done.is_set():
                    try:
                        raw = await asyncio.wait_for(ws.recv(), 0.5)
                    except TimeoutError:
                        continue
                    message = json.loads(raw)
                    if message["op"] == "event":
                        received.append(message["id"])
        except (ConnectionClosed, InvalidHandshake, InvalidStatus, OSError, TimeoutError):
            stats["disconnects"] += 1
            await asyncio.sleep(0.05)  # the API is restarting: try again shortly


async def _run(
    clients: int, restarts: int, batch: int, pause: float, workdir: Path, settle: float
) -> dict[str, Any]:
    db_url = f"sqlite:///{workdir / 'aiops.db'}"
    with Store.open(db_url) as db:
        db.create_detector({"id": "det-a", "kind": "zscore"})
    api = ApiProcess(db_url, free_port(), workdir / "api.log")
    api.start()
    stop, written, errors = threading.Event(), [], []
    writer = threading.Thread(
        target=_writer, args=(db_url, stop, written, batch, pause, errors), daemon=True
    )
    writer.start()
    done = asyncio.Event()
    received: list[list[int]] = [[] for _ in range(clients)]
    stats = {"connects": 0, "disconnects": 0}
    tasks = [asyncio.create_task(_client(api.port, r, done, stats)) for r in received]
    kinds = []
    try:
        for r in range(restarts):
            target = len(written) + 5 * batch  # let events flow before the next stop
            await _until(
                lambda t=target: len(written) >= t, 120, f"{target} events written", errors
            )
            sig = signal.SIGTERM if r % 2 == 0 else signal.SIGKILL
            kinds.append(sig.name)
            await asyncio.to_thread(api.stop, sig)
            await asyncio.to_thread(api.start)
        target = len(written) + 5 * batch
        await _until(lambda: len(written) >= target, 120, f"{target} events written", errors)
    except BaseException:
        done.set()
        api.stop(signal.SIGKILL)
        raise
    finally:
        stop.set()
        await asyncio.to_thread(writer.join, 30)
    expected = sorted(written)
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline and any((r[-1] if r else 0) < expected[-1] for r in received):
        await asyncio.sleep(0.1)  # bounded: the clients catch up on the last events
    done.set()
    await asyncio.gather(*tasks)
    api.stop(signal.SIGTERM)
    want = set(expected)
    missed = sum(len(want - set(r)) for r in received)
    doubled = sum(len(r) - len(set(r)) for r in received)
    out_of_order = sum(any(b <= a for a, b in zip(r, r[1:])) for r in received)
    return {
        "clients": clients,
        "restarts": restarts,
        "stops": kinds,
        "events": len(expected),
        "deliveries": sum(len(r) for r in received),
        "missed": missed,
        "doubled": doubled,
        "clients_out_of_order": out_of_order,
        **stats,
    }


def run(
    clients: int = 50,
    restarts: int = 5,
    *,
    batch: int = 5,
    pause: float = 0.05,
    workdir: Path | None = None,
    settle: float = 60.0,
) -> dict[str, Any]:
    """Run the scenario; returns its figures (``missed`` and ``doubled`` must be 0)."""
    if workdir is not None:
        return asyncio.run(_run(clients, restarts, batch, pause, workdir, settle))
    with tempfile.TemporaryDirectory(prefix="aiops-ws-restarts-") as tmp:
        return asyncio.run(_run(clients, restarts, batch, pause, Path(tmp), settle))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--restarts", type=int, default=5)
    parser.add_argument("--batch", type=int, default=5, help="events per insert")
    parser.add_argument("--pause", type=float, default=0.05, help="seconds between inserts")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.clients, args.restarts, batch=args.batch, pause=args.pause)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['clients']} clients, {result['restarts']} API restarts "
            f"({', '.join(result['stops'])}): {result['events']} events, {result['deliveries']} "
            f"deliveries, {result['missed']} missed, {result['doubled']} doubled, "
            f"{result['clients_out_of_order']} clients out of order ({result['connects']} "
            "connects)"
        )
    return 0 if result["missed"] == result["doubled"] == result["clients_out_of_order"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
