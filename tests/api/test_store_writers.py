"""Concurrent writers on one SQLite store (issue 12's figure, scaled down:
benchmarks/store_writers.py runs thousands of requests): HTTP clients doing detector CRUD at
once through a real API process while other processes insert events into the same file;
every acknowledged write is in the store as acknowledged, and no request fails with a 5xx."""

from __future__ import annotations

import pytest

from benchmarks.store_writers import run

pytestmark = [pytest.mark.timeout(300), pytest.mark.no_prometheus]


def test_concurrent_crud_and_event_writers_lose_no_acknowledged_write(tmp_path):
    result = run(clients=8, rounds=6, writers=2, events=150, workdir=tmp_path)
    print(result)
    assert result["crud_requests"] >= 8 * 6 * 3 and result["event_inserts"] == 2 * 150
    assert result["server_errors"] == 0
    assert result["lost_writes"] == result["duplicate_event_ids"] == 0
