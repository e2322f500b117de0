"""WebSocket resume across real API restarts, SIGTERM and SIGKILL (issue 12's figure, scaled
down: benchmarks/ws_restarts.py runs 50 and 100 clients across 5 restarts). A writer inserts
events the whole time; every client resumes with ?since=<last id> and ends with every event
exactly once, in order."""

from __future__ import annotations

import pytest

from benchmarks.ws_restarts import run

pytestmark = [pytest.mark.timeout(300), pytest.mark.no_prometheus]


def test_clients_resuming_across_sigterm_and_sigkill_restarts_miss_and_double_nothing(tmp_path):
    result = run(clients=10, restarts=2, batch=2, pause=0.02, workdir=tmp_path)
    print(result)
    assert result["stops"] == ["SIGTERM", "SIGKILL"]
    assert result["events"] > 0 and result["deliveries"] == 10 * result["events"]
    assert result["missed"] == result["doubled"] == result["clients_out_of_order"] == 0
    assert result["connects"] > 10  # clients reconnected (one still connecting may skip a restart)
