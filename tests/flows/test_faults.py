"""Faults that must cost nothing (docs/reliability.md): a datasource cut for 150 s is caught up
with no difference against a detector that never lost it, and a tick killed with SIGKILL
half-way resumes from its checkpoint with no duplicate and the same result as an
uninterrupted run. Real Prefect server, real Prometheus, real store; the clock is pinned
(``now``), so the 150 s are simulated ticks, not waiting."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime

import pytest

from flows.metrics import detect_metrics
from tasks._runtime import store
from tests.support.prometheus import SPIKE_INDEX, free_port

pytestmark = [pytest.mark.prefect, pytest.mark.prometheus]

TICK = 30  # seconds between ticks (the detectors' interval)
CUT = 150  # seconds the datasource is unreachable


def at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def make_detector(db, det_id: str, datasource: str, lookback: int = 3600) -> None:
    db.create_detector(
        {
            "id": det_id,
            "name": det_id,
            "kind": "zscore",
            "params": {"window": 40},
            "status": "running",
            "interval_seconds": TICK,
            "datasource": {
                "name": datasource,
                "query": "aiops_test_anomaly",
                "step": 15,
                "lookback": lookback,
            },
        }
    )


def found(db, det_id: str) -> list[tuple]:
    """What a detector produced, comparable across detectors: every event, the checkpoint,
    the model state per series."""
    events = [
        (e.type, e.series_key, e.ts, e.value, e.score, e.expected, e.lower, e.upper)
        for e in db.events_after(0, 10_000, detector=det_id)
    ]
    states = {k: v.state for k, v in db.load_states(det_id).items()}
    return [*events, ("checkpoint", db.get_checkpoint(det_id)), ("states", states)]


def differences(a: list, b: list) -> int:
    return sum((Counter(map(repr, a)) - Counter(map(repr, b))).values()) + sum(
        (Counter(map(repr, b)) - Counter(map(repr, a))).values()
    )


async def test_a_datasource_cut_for_150s_is_caught_up_with_no_difference(
    aiops_env, prometheus, monkeypatch, tmp_path
):
    h = prometheus.history
    config = tmp_path / "aiops.yaml"
    dead = f"http://127.0.0.1:{free_port()}"

    def relay(url: str) -> None:  # the named datasource "relay": the same Prometheus, or nothing
        config.write_text(f"datasources:\n  relay:\n    type: prometheus\n    urls: [{url}]\n")

    relay(prometheus.url)
    monkeypatch.setenv("AIOPS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AIOPS_RETRY_ATTEMPTS", "1")
    db = store()
    make_detector(db, "direct", "prometheus")
    make_detector(db, "cut", "relay")
    first = h.timestamp(SPIKE_INDEX) - 3 * TICK  # the spike falls inside the cut
    ticks = [first + k * TICK for k in range(2 + CUT // TICK + 3)]
    cut = set(ticks[2 : 2 + CUT // TICK])
    failed = 0
    for now in ticks:
        relay(dead if now in cut else prometheus.url)
        summary = await detect_metrics(now=at(now))
        rows = {r["detector"]: r for r in summary["detectors"]}
        assert rows["direct"]["status"] == "ok"
        if now in cut:
            assert (
                rows["cut"]["status"] == "failed" and db.collector_status("cut").state == "failed"
            )
            failed += 1
        else:
            assert rows["cut"]["status"] == "ok"
    assert failed == CUT // TICK
    direct, caught_up = found(db, "direct"), found(db, "cut")
    assert [e for e in direct if e[0] == "anomaly"], "the spike was found"
    assert differences(direct, caught_up) == 0
    print(
        f"datasource cut {CUT} s ({failed} failed ticks): {len(direct) - 2} events on the direct "
        f"path, {differences(direct, caught_up)} differences after the catch-up"
    )


def test_a_tick_killed_half_way_resumes_with_no_duplicate_and_the_same_result(
    aiops_env, prometheus, monkeypatch
):
    """SIGKILL a tick in another process after a few of its pieces were committed; once the
    killed run's claim has lapsed, the next tick resumes from the checkpoint, and the result
    equals a detector that was never killed."""
    from prefect.settings import PREFECT_API_URL

    h = prometheus.history
    db = store()
    make_detector(db, "killed", "prometheus", lookback=6 * 3600)
    now = h.end + h.step
    monkeypatch.setenv("AIOPS_BUFFER_SIZE", "200")  # 100 steps of 2 series a piece: ~15 pieces
    monkeypatch.setenv("AIOPS_CLAIM_LEASE_SECONDS", "3")  # the killed run's claim lapses soon
    script = (
        "import asyncio, datetime as d\n"
        "from flows.metrics import detect_metrics\n"
        f"asyncio.run(detect_metrics(now=d.datetime.fromtimestamp({now}, d.UTC)))\n"
    )
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=os.getcwd())
    try:
        for _ in range(1200):  # at most ~4 minutes: each poll pauses in proc.wait
            try:
                proc.wait(timeout=0.2)
                break  # it ended by itself: the assertion below says so
            except subprocess.TimeoutExpired:
                pass
            checkpoint = db.get_checkpoint("killed")
            if checkpoint is not None and checkpoint >= at(h.start + 3 * 100 * h.step):
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    killed_at = db.get_checkpoint("killed")
    assert killed_at is not None and killed_at < at(h.end), "the tick was not killed half-way"

    make_detector(db, "whole", "prometheus", lookback=6 * 3600)
    asyncio.run(detect_metrics(["whole"], now=at(now)))  # the same window, never interrupted
    # the killed run's claim on its detector lapses after its lease (nobody renews it)
    deadline = time.monotonic() + 60
    while db.claims(["killed"]):
        assert time.monotonic() < deadline, "the killed run's claim never lapsed"
        threading.Event().wait(0.2)
    later = now + TICK  # both are due again: the killed one resumes from its checkpoint
    asyncio.run(detect_metrics(now=at(later)))
    killed, whole = found(db, "killed"), found(db, "whole")
    keys = [
        (e.series_key, e.ts)
        for e in db.events_after(0, 10_000, detector="killed")
        if e.type == "anomaly"
    ]
    assert len(keys) == len(set(keys)) and keys, "no duplicate anomaly"
    assert differences(killed, whole) == 0
    print(
        f"kill -9 of a tick at {killed_at:%H:%M:%S} "
        f"({(killed_at.timestamp() - h.start) / (h.end - h.start):.0%} done): {len(killed) - 2} "
        f"events after the resume, 0 duplicates, {differences(killed, whole)} differences"
    )
