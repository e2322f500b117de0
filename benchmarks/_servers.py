"""Servers the benchmarks run against, each in its own process: a Prefect server (as `aiops up`
starts it: `python -m prefect server start`, SQLite under its PREFECT_HOME, or PostgreSQL) and
Debian's PostgreSQL (tests/support/postgres.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aiops.up import prefect_server_command
from tests.support.prometheus import free_port


@contextmanager
def prefect_server(
    home: Path, *, database_url: str | None = None, timeout: float = 180.0
) -> Iterator[str]:
    """Start a Prefect server on 127.0.0.1 (a free port); yield its API URL."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    env.pop("PREFECT_API_URL", None)
    if database_url:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database_url
    log = open(home / "server.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        prefect_server_command(sys.executable, port),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"Prefect server not healthy after {timeout}s: "
                    f"{(home / 'server.log').read_text()[-2000:]}"
                )
            try:
                code = proc.wait(timeout=0.25)  # the pause between polls; notices a crash
            except subprocess.TimeoutExpired:
                continue
            raise RuntimeError(
                f"Prefect server exited with {code}: {(home / 'server.log').read_text()[-2000:]}"
            )
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def rss_mb() -> float:
    """Peak resident set size of this process, MiB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_mb(pids: list[int]) -> float:
    """Sum of the peak resident set sizes (VmHWM) of ``pids`` that are still alive, MiB."""
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1]) / 1024
        except OSError:
            continue
    return total
