"""Debian's real Alertmanager (``prometheus-alertmanager``) on 127.0.0.1 for the tests."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from aiops.localprom import free_port

CONFIG = """\
route:
  receiver: blackhole
  group_wait: 1s
  group_interval: 1s
receivers:
  - name: blackhole
"""


def binary() -> str:
    found = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if not found:
        raise RuntimeError("prometheus-alertmanager is not installed: run `make system-deps`")
    return found


@dataclass
class RunningAlertmanager:
    url: str
    process: subprocess.Popen

    def alerts(self) -> list[dict]:
        """Alerts Alertmanager holds as active (resolved ones are left out)."""
        response = httpx.get(f"{self.url}/api/v2/alerts", timeout=5)
        response.raise_for_status()
        return response.json()


@contextmanager
def run_alertmanager(
    workdir: Path, *, port: int | None = None, ready_timeout: float = 30.0
) -> Iterator[RunningAlertmanager]:
    """Alertmanager on 127.0.0.1 (a free port unless given), no clustering, until the block
    exits."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "alertmanager.yml"
    config.write_text(CONFIG)
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    log = (workdir / "alertmanager.log").open("w")
    proc = subprocess.Popen(
        [
            binary(),
            f"--config.file={config}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            try:  # waiting on the process is the pause between polls; it also notices a crash
                code = proc.wait(timeout=0.1)
                raise RuntimeError(
                    f"alertmanager exited with {code}: "
                    f"{(workdir / 'alertmanager.log').read_text()[-2000:]}"
                )
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"alertmanager at {url} not ready after {ready_timeout:.0f}s")
        yield RunningAlertmanager(url, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
