"""A local Prometheus: Debian's ``prometheus`` on 127.0.0.1, optionally with history.

Used by ``aiops up`` (the demo stack when no Prometheus is configured), by the benchmarks
and by the tests. History is written as OpenMetrics text, turned into TSDB blocks by
``promtool tsdb create-blocks-from openmetrics`` and served by the started server.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from aiops.errors import AiopsError, ConfigError

__all__ = [
    "Family",
    "LocalPrometheus",
    "binaries",
    "free_port",
    "load_history",
    "load_openmetrics",
    "om_escape",
    "run_prometheus",
    "start_prometheus",
    "write_openmetrics",
]

log = logging.getLogger(__name__)


def om_escape(value: str) -> str:
    """A label value escaped for OpenMetrics text."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@dataclass
class Family:
    """One metric family: ``samples`` yields ``(labels, [(unix_seconds, value), ...])`` per
    series."""

    metric: str
    type: str  # "gauge" or "counter"
    samples: Iterable[tuple[Mapping[str, str], Iterable[tuple[float, float]]]]


def write_openmetrics(families: Iterable[Family], out: IO[str]) -> int:
    """Write ``families`` as OpenMetrics text (with ``# EOF``); returns the samples written.
    Families are streamed, so the history never has to fit in memory."""
    written = 0
    for fam in families:
        out.write(_type_line(fam))
        for labels, points in fam.samples:
            prefix = _series_prefix(fam.metric, labels)
            lines = [f"{prefix} {float(v)!r} {_ts(ts)}\n" for ts, v in points]
            out.writelines(lines)
            written += len(lines)
    out.write("# EOF\n")
    return written


def _type_line(fam: Family) -> str:
    name = fam.metric.removesuffix("_total") if fam.type == "counter" else fam.metric
    return f"# TYPE {name} {fam.type}\n"


def _series_prefix(metric: str, labels: Mapping[str, str]) -> str:
    text = ",".join(f'{k}="{om_escape(v)}"' for k, v in sorted(labels.items()))
    return f"{metric}{{{text}}}" if text else metric


def _ts(ts: float) -> str:
    return str(int(ts)) if float(ts).is_integer() else f"{ts:.3f}"


def load_history(
    families: Iterable[Family], data_dir: Path, workdir: Path, *, chunk_seconds: float = 86400.0
) -> int:
    """Write ``families`` as OpenMetrics files of ``chunk_seconds`` each (a day by default)
    and load each with promtool into ``data_dir``; returns the samples loaded.

    promtool reads its whole input once per 2-hour block it creates, so one file of 30 days
    costs about 30 times more than 30 files of a day (minutes instead of seconds). Samples
    are routed to their chunk's file as they stream by, so memory stays flat."""
    workdir.mkdir(parents=True, exist_ok=True)
    files: dict[int, IO[str]] = {}
    written = 0
    try:
        for fam in families:
            headed: set[int] = set()
            for labels, points in fam.samples:
                prefix = _series_prefix(fam.metric, labels)
                for ts, v in points:
                    chunk = int(ts // chunk_seconds)
                    out = files.get(chunk)
                    if out is None:
                        out = files[chunk] = (workdir / f"history-{chunk}.om").open(
                            "w", encoding="utf-8"
                        )
                    if chunk not in headed:
                        out.write(_type_line(fam))
                        headed.add(chunk)
                    out.write(f"{prefix} {float(v)!r} {_ts(ts)}\n")
                    written += 1
        for out in files.values():
            out.write("# EOF\n")
            out.close()
        for chunk in sorted(files):
            path = workdir / f"history-{chunk}.om"
            load_openmetrics(path, data_dir)
            path.unlink()
    finally:
        for chunk, out in files.items():
            out.close()
            (workdir / f"history-{chunk}.om").unlink(missing_ok=True)
    return written


def binaries() -> tuple[str, str]:
    """Paths of ``prometheus`` and ``promtool``, or a ConfigError saying how to get them."""
    prom, tool = shutil.which("prometheus"), shutil.which("promtool")
    if not prom or not tool:
        raise ConfigError(
            "prometheus/promtool not found: install Debian's prometheus package "
            "(`make up` and `make test` do it), or set AIOPS_PROMETHEUS_URL",
            setting="AIOPS_PROMETHEUS_URL",
        )
    return prom, tool


def load_openmetrics(om_file: Path, data_dir: Path, *, timeout: float = 900.0) -> None:
    """Turn an OpenMetrics file into TSDB blocks under ``data_dir`` (promtool)."""
    _, tool = binaries()
    data_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [tool, "tsdb", "create-blocks-from", "openmetrics", str(om_file), str(data_dir)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise AiopsError(
            f"promtool could not load {om_file}: {(done.stderr or done.stdout).strip()[-1000:]}"
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalPrometheus:
    url: str
    port: int
    process: subprocess.Popen
    data_dir: Path
    workdir: Path

    def stop(self, timeout: float = 20.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _config_text(
    scrape_targets: Mapping[str, Sequence[str]],
    scrape_interval: str,
    rule_files: Sequence[Path] = (),
) -> str:
    lines = [
        "global:",
        f"  scrape_interval: {scrape_interval}",
        f"  evaluation_interval: {scrape_interval}",
    ]
    if rule_files:
        lines += ["rule_files:"] + [f"  - {json.dumps(str(Path(p).resolve()))}" for p in rule_files]
    if not scrape_targets:
        return "\n".join(lines + ["scrape_configs: []", ""])
    lines.append("scrape_configs:")
    for job, targets in scrape_targets.items():
        lines += [
            f"  - job_name: {job!r}",
            "    static_configs:",
            f"      - targets: {list(targets)!r}",
        ]
    return "\n".join(lines + [""]).replace("'", '"')


def start_prometheus(
    workdir: Path,
    *,
    port: int | None = None,
    data_dir: Path | None = None,
    scrape_targets: Mapping[str, Sequence[str]] | None = None,
    scrape_interval: str = "15s",
    ready_timeout: float = 60.0,
    retention: str = "3650d",
    rule_files: Sequence[Path] = (),
) -> LocalPrometheus:
    """Start ``prometheus`` on 127.0.0.1 (a free port unless given), scraping
    ``scrape_targets`` (job name -> host:port list) and evaluating ``rule_files``, and wait
    until it is ready."""
    prom, _ = binaries()
    workdir.mkdir(parents=True, exist_ok=True)
    data = data_dir or workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(_config_text(scrape_targets or {}, scrape_interval, rule_files))
    port = port or free_port()
    logfile = workdir / "prometheus.log"
    with logfile.open("w") as out:
        proc = subprocess.Popen(
            [
                prom,
                f"--config.file={config}",
                f"--storage.tsdb.path={data}",
                f"--web.listen-address=127.0.0.1:{port}",
                f"--storage.tsdb.retention.time={retention}",
                "--query.lookback-delta=5m",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    running = LocalPrometheus(
        url=f"http://127.0.0.1:{port}", port=port, process=proc, data_dir=data, workdir=workdir
    )
    try:
        _wait_ready(proc, running.url, ready_timeout, logfile)
    except BaseException:
        running.stop()
        raise
    log.info("local prometheus ready at %s (data %s)", running.url, data)
    return running


@contextmanager
def run_prometheus(workdir: Path, **kwargs: object) -> Iterator[LocalPrometheus]:
    """:func:`start_prometheus` until the block exits."""
    running = start_prometheus(workdir, **kwargs)  # type: ignore[arg-type]
    try:
        yield running
    finally:
        running.stop()


def _wait_ready(proc: subprocess.Popen, url: str, timeout: float, logfile: Path) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            try:
                if client.get(url + "/-/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            try:
                # Waiting on the process is the pause between polls; it also notices a crash.
                code = proc.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                continue
            raise AiopsError(f"prometheus exited with {code}: {logfile.read_text()[-2000:]}")
    raise AiopsError(
        f"prometheus at {url} not ready after {timeout:.0f}s: {logfile.read_text()[-2000:]}"
    )
