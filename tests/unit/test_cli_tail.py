"""`aiops tail-logs`: a Loki selector over the stand-in's tail WebSocket, and a growing file
stopped by SIGTERM (the window so far is reported, the exit is clean)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from aiops.cli import main
from tests.support.fakeloki import FakeLoki, serving

ROOT = Path(__file__).resolve().parents[2]


def test_a_selector_is_tailed_and_reported_per_window(tmp_path, monkeypatch, capsys):
    fake = FakeLoki()
    now = time.time_ns()
    for i in range(20):
        fake.add({"app": "api"}, now - (30 - i) * 10**9, f"ERROR payment {i} declined by bank")
    with serving(fake) as url:
        monkeypatch.setenv("AIOPS_LOKI_URL", url)
        monkeypatch.setenv("AIOPS_DATA_DIR", str(tmp_path))
        monkeypatch.setenv("AIOPS_CONFIG_FILE", str(_config(tmp_path)))
        code = main(
            [
                "tail-logs",
                "--selector",
                '{app="api"}',
                "--since",
                "1m",
                "--window",
                "1s",
                "--max-windows",
                "2",
                "--job",
                "payments",
                "--json",
            ]
        )
    assert code == 0
    windows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(windows) == 2
    report = windows[0]["report"] if windows[0]["lines"] else windows[1]["report"]
    assert report["total_logs"] == 20 and report["pattern_counts"] == {"payment_declined": 20}
    assert sum(w["lines"] for w in windows) == 20


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "aiops.yaml"
    path.write_text(
        "log_jobs:\n  - name: payments\n    selector: '{app=\"api\"}'\n"
        "    patterns:\n      payment_declined: 'payment .* declined'\n"
    )
    return path


def test_an_unknown_job_or_datasource_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AIOPS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("AIOPS_LOKI_URL", raising=False)
    assert main(["tail-logs", "--selector", '{app="api"}']) == 2
    assert "no Loki datasource named 'loki'" in capsys.readouterr().err
    assert main(["tail-logs", str(tmp_path / "x.log"), "--job", "nope"]) == 2
    assert "no log job named 'nope'" in capsys.readouterr().err
    assert main(["tail-logs", "/etc/passwd"]) == 2
    assert "outside the allowed log roots" in capsys.readouterr().err


def test_sigterm_reports_the_window_so_far_and_exits_cleanly(tmp_path):
    log = tmp_path / "app.log"
    log.write_text(
        "2026-01-01T00:00:00Z INFO started\n2026-01-01T00:00:01Z ERROR db timeout after 30ms\n"
    )
    env = {**os.environ, "AIOPS_LOG_ROOTS": str(tmp_path), "AIOPS_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiops.cli",
            "tail-logs",
            str(log),
            "--from-start",
            "--window",
            "1h",
            "--json",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready = threading.Event()

        def wait_ready() -> None:
            for line in proc.stderr:
                if "tailing" in line:
                    ready.set()
                    return

        threading.Thread(target=wait_ready, daemon=True).start()
        assert ready.wait(60), "tail-logs did not start"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    (window,) = [json.loads(line) for line in out.splitlines()]
    assert window["partial"] is True
    # the lines there at the start may still be on their way when the signal comes: no more than 2
    assert window["lines"] <= 2 and window["report"]["total_logs"] == window["lines"]
