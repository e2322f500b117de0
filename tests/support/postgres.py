"""A real PostgreSQL for the store's tests: Debian's server binaries, a throw-away cluster
on 127.0.0.1 (a free port), owned by the ``postgres`` user when the tests run as root."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.prometheus import free_port


def binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError(
            "PostgreSQL server binaries not found: run `make test` (it installs Debian's "
            "postgresql)"
        )
    return Path(found[-1]).parent


@contextmanager
def run_postgres(workdir: Path, *, ready_timeout: float = 60.0) -> Iterator[str]:
    """Yield a SQLAlchemy URL (user ``aiops``, trust auth) of a fresh cluster."""
    import psycopg

    bin_dir = binaries()
    workdir.mkdir(parents=True, exist_ok=True)
    data, sockets = workdir / "data", workdir / "sockets"
    sockets.mkdir(exist_ok=True)
    prefix: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        shutil.chown(workdir, "postgres")
        shutil.chown(sockets, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [
            *prefix,
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            "aiops",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    log = workdir / "postgres.log"
    proc = subprocess.Popen(
        [
            *prefix,
            str(bin_dir / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-k",
            str(sockets),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "max_connections=200",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(log, "w"),  # noqa: SIM115 - closed with the process
    )
    dsn = f"host=127.0.0.1 port={port} user=aiops dbname=postgres"
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            try:
                psycopg.connect(dsn, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"postgres not ready after {ready_timeout}s: {log.read_text()[-2000:]}"
                    ) from None
            try:
                code = proc.wait(timeout=0.1)  # the pause between polls; notices a crash
            except subprocess.TimeoutExpired:
                continue
            raise RuntimeError(f"postgres exited with {code}: {log.read_text()[-2000:]}")
        yield f"postgresql+psycopg://aiops@127.0.0.1:{port}/postgres"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def create_database(server_url: str, name: str) -> str:
    """A new empty database on the server; returns its URL."""
    import psycopg

    dsn = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"
