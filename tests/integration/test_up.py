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
    """With AIOPS_API_TOKEN set (as any non-loopback bind requires): `aiops up` waits on the
    unauthenticated /healthz, so it becomes ready instead of giving up on a 401."""
    prefect_port, api_port = free_port(), free_port()
    token = "up-test-token-0123456789"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AIOPS_"))}
    env.update(
        AIOPS_DATA_DIR=str(tmp_path / "data"),
        AIOPS_PREFECT_PORT=str(prefect_port),
        AIOPS_API_PORT=str(api_port),
        AIOPS_API_TOKEN=token,
        AIOPS_PROMETHEUS_URL=f"http://127.0.0.1:{free_port()}",
        HOME=str(tmp_path),
    )
    log = (tmp_path / "up.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiops.cli", "up"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    api = f"http://127.0.0.1:{api_port}"
    try:

        def up_is_ready() -> bool:  # printed after its own readiness probe succeeded
            return "aiops is up" in (tmp_path / "up.log").read_text()

        wait_for(proc, up_is_ready, 240, "aiops up reporting ready")
        assert httpx.get(f"{api}/healthz", timeout=10).json() == {"status": "ready"}
        assert httpx.get(f"{api}/api/detectors", timeout=10).status_code == 401

        def deployments_served() -> bool:
            r = httpx.post(
                f"{api}/api/runs",
                json={"flow": "detect-metrics"},
                timeout=30,
                headers={"Authorization": f"Bearer {token}"},
            )
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


# ------------------------------------------------------------------------- the demo


def _stop(proc: subprocess.Popen, sig: int, timeout: float = 90) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        pytest.fail(f"aiops up did not stop within {timeout:.0f} s of signal {sig}")


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def _port_closed(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.timeout(600)
def test_up_demo_delivers_an_anomaly_on_the_websocket_then_leaves_nothing_running(tmp_path):
    """No Prometheus configured: `aiops up` runs the demo (workload exporter, local Prometheus
    with the workload's history, demo detectors and log job); the first anomaly arrives on the
    WebSocket within minutes; Ctrl-C (SIGINT) stops every process it started."""
    import asyncio
    import json
    import threading

    import websockets

    from aiops.supervisor import descendants, process_alive, process_start_time

    ports = {name: free_port() for name in ("prefect", "api", "prometheus", "exporter")}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AIOPS_"))}
    env.update(
        AIOPS_DATA_DIR=str(tmp_path / "data"),
        AIOPS_PREFECT_PORT=str(ports["prefect"]),
        AIOPS_API_PORT=str(ports["api"]),
        HOME=str(tmp_path),
    )
    cmd = [
        sys.executable,
        "-m",
        "aiops.cli",
        "up",
        "--prometheus-port",
        str(ports["prometheus"]),
        "--exporter-port",
        str(ports["exporter"]),
    ]
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output: list[str] = []
    ready, ended = threading.Event(), threading.Event()

    def read() -> None:  # drains the pipe (children share it) and notices the "up" block
        for line in proc.stdout:
            output.append(line)
            if line.startswith("aiops is up"):
                ready.set()
        ended.set()
        ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    seen: dict[int, int | None] = {}
    try:
        assert ready.wait(240), "aiops up did not print where everything is within 240 s"
        assert not ended.is_set(), "aiops up exited early:\n" + "".join(output[-60:])
        up_after = time.monotonic() - started
        block = "".join(output)
        for needle in (
            f"http://127.0.0.1:{ports['prefect']}",
            f"ws://127.0.0.1:{ports['api']}/api/events/ws",
            f"http://127.0.0.1:{ports['api']}/docs",
            f"http://127.0.0.1:{ports['prometheus']}",
            f"http://127.0.0.1:{ports['exporter']}/metrics",
            "app.log",
        ):
            assert needle in block, needle
        seen.update({p: process_start_time(p) for p in descendants(proc.pid)})
        assert len(seen) >= 5, seen  # prefect server, workload, prometheus, deployments, api

        async def first_anomaly() -> dict:
            url = f"ws://127.0.0.1:{ports['api']}/api/events/ws?type=anomaly"
            async with websockets.connect(url) as ws:
                while True:
                    message = json.loads(await ws.recv())
                    if message["op"] == "event":
                        return message["event"]

        event = asyncio.run(
            asyncio.wait_for(first_anomaly(), timeout=240)
        )  # bounded from "aiops is up"
        first_after = time.monotonic() - started
        print(
            f"aiops up: ready after {up_after:.0f} s, first anomaly on the WebSocket after "
            f"{first_after:.0f} s"
        )
        assert event["type"] == "anomaly" and event["detector_id"].startswith("demo-"), event
        assert event["score"] > 1
        listed = httpx.get(f"http://127.0.0.1:{ports['api']}/api/anomalies", timeout=30).json()
        assert any(item["id"] == event["id"] for item in listed["items"])
        metrics = httpx.get(f"http://127.0.0.1:{ports['api']}/metrics", timeout=30).text
        assert f'aiops_anomaly_score{{detector="{event["detector_id"]}"' in metrics

        # kill -9 of the demo Prometheus (a datasource): the API and the Prefect server stay up,
        # and the supervisor starts Prometheus again (issue 12, item 8)
        listen = f"--web.listen-address=127.0.0.1:{ports['prometheus']}".encode()
        (prom_pid,) = [p for p in descendants(proc.pid) if listen in _cmdline(p)]
        os.kill(prom_pid, signal.SIGKILL)

        def prometheus_back() -> bool:
            try:
                return (
                    httpx.get(
                        f"http://127.0.0.1:{ports['prometheus']}/-/ready", timeout=2
                    ).status_code
                    == 200
                )
            except httpx.TransportError:
                return False

        wait_for(proc, lambda: not process_alive(prom_pid), 30, "the killed Prometheus being gone")
        wait_for(proc, prometheus_back, 120, "Prometheus restarted and ready")
        assert httpx.get(f"http://127.0.0.1:{ports['api']}/healthz", timeout=10).status_code == 200
        assert (
            httpx.get(f"http://127.0.0.1:{ports['prefect']}/api/health", timeout=10).status_code
            == 200
        )
        assert (
            "prometheus (pid %d) exited with code -9 (SIGKILL): restarting it" % prom_pid
            in "".join(output)
        )
        seen.update({p: process_start_time(p) for p in descendants(proc.pid)})

        # ... and in the Prefect UI: the incident events and the tick's summary artifact (both
        # sent by the flow run after its commit, so they may trail the WebSocket a little)
        prefect = f"http://127.0.0.1:{ports['prefect']}/api"

        def in_prefect() -> bool:
            events = httpx.post(
                f"{prefect}/events/filter",
                timeout=30,
                json={"filter": {"event": {"prefix": ["aiops.incident."]}}, "limit": 5},
            ).json()
            artifacts = httpx.post(
                f"{prefect}/artifacts/filter",
                timeout=30,
                json={"artifacts": {"key": {"any_": ["detect-metrics-summary"]}}, "limit": 1},
            ).json()
            return bool(events.get("events")) and bool(artifacts)

        wait_for(proc, in_prefect, 120, "the incident events and the summary artifact in Prefect")
        seen.update({p: process_start_time(p) for p in descendants(proc.pid)})  # flow runs too

    finally:
        if proc.poll() is None:
            seen.update({p: process_start_time(p) for p in descendants(proc.pid)})
        code = _stop(proc, signal.SIGINT)
        reader.join(timeout=30)
    assert code == 0, "".join(output[-60:])
    alive = [p for p, t in seen.items() if process_alive(p, t)]
    assert not alive, f"processes left behind: {alive}"
    closed = {name: _port_closed(port) for name, port in ports.items()}
    assert all(closed.values()), closed
