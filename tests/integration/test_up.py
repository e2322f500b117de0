"""`aiops up` (the README's run command) brings up Prefect, the deployments and the API,
and stops them all on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.support.prometheus import free_port

pytestmark = pytest.mark.prefect


def wait_for(proc: subprocess.Popen, check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        try:
            code = proc.wait(timeout=0.5)  # the pause between checks; notices an early exit
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(f"aiops up exited with {code} before {what}")
    pytest.fail(f"{what} not reached within {timeout}s")


def test_up_serves_the_api_and_the_deployments_then_stops_cleanly(tmp_path):
    prefect_port, api_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AIOPS_"))}
    env.update(
        AIOPS_DATA_DIR=str(tmp_path / "data"),
        AIOPS_PREFECT_PORT=str(prefect_port),
        AIOPS_API_PORT=str(api_port),
        AIOPS_PROMETHEUS_URL=f"http://127.0.0.1:{free_port()}",
        HOME=str(tmp_path),
    )
    log = (tmp_path / "up.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "aiops.cli", "up"], env=env, stdout=log, stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{api_port}"
    try:
        def api_ready() -> bool:
            try:
                return httpx.get(f"{api}/api/datasources/health", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(proc, api_ready, 240, "the API answering")

        def deployments_served() -> bool:
            r = httpx.post(f"{api}/api/runs", json={"flow": "detect-metrics"}, timeout=30)
            return r.status_code == 201

        wait_for(proc, deployments_served, 120, "detect-metrics/default being served")
        assert (tmp_path / "data" / "aiops.db").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            pytest.fail("aiops up did not stop within 60 s of SIGTERM")
        log.close()
    assert code == 0, (tmp_path / "up.log").read_text()[-3000:]
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{prefect_port}/api/health", timeout=2)
