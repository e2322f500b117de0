"""Scale-out: two workers (real processes, each running detect-metrics flow runs) against one
PostgreSQL store, one Prefect server and the real Prometheus share 200 detectors tick after
tick: every due window is processed exactly once, and a worker SIGKILLed mid-tick loses
nothing and doubles nothing once its claims have lapsed.

All 200 detectors watch the same query with the same model, so whoever processed which
piece, they must end with identical anomalies, incidents, checkpoints and model states: a
window lost or processed twice would show as a difference (or a duplicate row).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aiops.store import Store
from tests.support.prometheus import SPIKE_INDEX

pytestmark = [pytest.mark.prefect, pytest.mark.prometheus]

DETECTORS = 200
LEASE = 3  # seconds: a killed worker's claims lapse quickly


@pytest.fixture(scope="module")
def pg_url():
    from tests.support.postgres import create_database, run_postgres

    workdir = Path(tempfile.mkdtemp(prefix="aiops-pg-scale-"))
    try:
        with run_postgres(workdir) as server:
            yield create_database(server, f"scale_{uuid.uuid4().hex[:8]}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


class Worker:
    """One worker process (tests/support/tick_worker.py)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.tick_worker"],
            env=env,
            cwd=os.getcwd(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.pool = ThreadPoolExecutor(1)
        assert self.read(timeout=180)["ready"]

    def read(self, timeout: float) -> dict:
        line = self.pool.submit(self.proc.stdout.readline).result(timeout=timeout)
        assert line, f"worker {self.proc.pid} exited with {self.proc.poll()}"
        return json.loads(line)

    def tick(self, ts: float) -> None:
        self.proc.stdin.write(f"{ts}\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.pool.shutdown(wait=False, cancel_futures=True)


def found(db: Store, det_id: str) -> list:
    """What a detector produced, comparable across detectors."""
    events = [
        (e.type, e.series_key, e.ts, e.value, e.score, e.expected)
        for e in db.events_after(0, 10_000, detector=det_id)
    ]
    incidents = [
        (i.series_key, i.opened_at, i.resolved_at, i.points, i.peak_at, i.peak_value)
        for i in db.list_incidents(detector=det_id)
    ]
    states = {k: v.state for k, v in db.load_states(det_id).items()}
    return [*events, *incidents, ("checkpoint", db.get_checkpoint(det_id)), ("states", states)]


def test_two_workers_share_200_detectors_exactly_once_even_when_one_is_killed(
    prometheus, pg_url, tmp_path
):
    from prefect.settings import PREFECT_API_URL

    h = prometheus.history
    db = Store.open(pg_url)
    ids = [f"det-{k:03d}" for k in range(DETECTORS)]
    for det_id in ids:
        db.create_detector(
            {
                "id": det_id,
                "name": det_id,
                "kind": "zscore",
                "params": {"window": 40},
                "status": "running",
                "interval_seconds": 30,
                "resolve_after": 5,
                "datasource": {
                    "query": 'aiops_test_anomaly{instance="a"}',
                    "step": 15,
                    "lookback": 1800,
                },
            }
        )
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "AIOPS_DATABASE_URL": pg_url,
        "AIOPS_PROMETHEUS_URL": prometheus.url,
        "AIOPS_BUFFER_SIZE": "20",
        "AIOPS_BATCH_SIZE": "25",
        "AIOPS_CLAIM_LEASE_SECONDS": str(LEASE),
        "AIOPS_RETRY_INITIAL_SECONDS": "0",
        "AIOPS_DATA_DIR": str(tmp_path / "data"),
    }
    env.pop("AIOPS_CONFIG_FILE", None)
    step = h.step

    def at(index: int) -> float:  # a tick whose window ends at sample ``index``
        return h.timestamp(index) + step

    workers = [Worker(env), Worker(env)]
    processed: Counter = Counter()  # (detector, window) -> how many runs processed it
    shares: list[list[int]] = []  # per tick, detectors each worker processed
    try:
        # ticks 1-2: both workers run each tick at once; every detector is processed by one
        for index in (900, 940):
            for w in workers:
                w.tick(at(index))
            outcomes = [w.read(timeout=300) for w in workers]
            ok = [
                (d, window) for o in outcomes for d, status, window in o["rows"] if status == "ok"
            ]
            assert sorted(d for d, _ in ok) == ids, (
                "each due detector processed by exactly one worker"
            )
            shares.append([len(o["rows"]) for o in outcomes])
            processed.update(ok)

        # tick 3 (a long window, 10 pieces a detector): SIGKILL one worker once it has
        # committed some pieces and still holds claims
        victim, survivor = workers
        tick3 = at(1140)
        victim.tick(tick3)
        deadline = time.monotonic() + 300
        while not any(
            c.holder and c.holder.endswith(f":{victim.proc.pid}") for c in db.claims().values()
        ):
            assert time.monotonic() < deadline, "the victim never claimed"
            threading.Event().wait(0.05)
        survivor.tick(tick3)  # the same tick, started a moment later
        deadline = time.monotonic() + 300
        while True:
            assert time.monotonic() < deadline, "the victim never held claims mid-tick"
            held = [
                c
                for c in db.claims().values()
                if c.holder and c.holder.endswith(f":{victim.proc.pid}")
            ]
            moved = sum(
                1
                for d in ids
                if (db.get_checkpoint(d) or datetime.min.replace(tzinfo=UTC)).timestamp()
                > at(940) - step
            )
            if held and moved:
                break
            threading.Event().wait(0.05)
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(timeout=30)
        orphaned = [
            c.detector_id
            for c in db.claims(live=False).values()
            if c.holder and c.holder.endswith(f":{victim.proc.pid}")
        ]
        assert orphaned, "the victim was killed holding claims"
        outcome = survivor.read(timeout=300)
        processed.update((d, window) for d, status, window in outcome["rows"] if status == "ok")
        assert not set(orphaned) & {d for d, status, _ in outcome["rows"] if status == "ok"}, (
            "the survivor left the victim's claimed detectors alone while their lease lived"
        )

        # a new worker replaces the victim; once the victim's claims have lapsed, the next
        # ticks take its detectors up from their checkpoints
        workers[0] = Worker(env)
        deadline = time.monotonic() + 60
        while any(
            c.holder and c.holder.endswith(f":{victim.proc.pid}") for c in db.claims().values()
        ):
            assert time.monotonic() < deadline, "the victim's claims never lapsed"
            threading.Event().wait(0.2)
        for index in (1160, 1200):
            for w in workers:
                w.tick(at(index))
            outcomes = [w.read(timeout=300) for w in workers]
            ok = [
                (d, window) for o in outcomes for d, status, window in o["rows"] if status == "ok"
            ]
            assert len({d for d, _ in ok}) == len(ok) == DETECTORS
            processed.update(ok)
    finally:
        for w in workers:
            w.stop()

    assert not [k for k, n in processed.items() if n > 1], "no window processed twice"
    print(f"detectors per worker and tick: {shares}; killed holding {len(orphaned)} claims")
    # every detector ends where the history ends, with the same result as every other one
    reference = found(db, ids[0])
    assert [e for e in reference if e[0] == "anomaly"], "the spike was found"
    assert ("checkpoint", datetime.fromtimestamp(h.timestamp(1200), UTC)) in reference
    incidents = db.list_incidents(detector=ids[0])
    assert len(incidents) == 1 and incidents[0].opened_at == datetime.fromtimestamp(
        h.timestamp(SPIKE_INDEX), UTC
    )
    differing = [d for d in ids[1:] if found(db, d) != reference]
    assert differing == [], (
        f"{len(differing)} detectors differ from {ids[0]} (a window lost or doubled)"
    )
    keys = [(e.detector_id, e.type, e.series_key, e.ts) for e in db.events_after(0, 10_000)]
    assert len(keys) == len(set(keys))
    db.close()
