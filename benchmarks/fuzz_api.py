"""Fuzz the running API from its own OpenAPI document with schemathesis (docs/reliability.md).

A real ``aiops api`` process with a token, over a SQLite store, Debian's Prometheus (empty)
and the documented Loki stand-in (``tests/support/fakeloki.py``); no Prefect server, so the run
triggers answer their documented 503. ``schemathesis run`` drives every operation with every
check (no 5xx, status codes, content types, headers and bodies as documented, refusing what the
document forbids, accepting what it allows); the figure that must stay 0 is responses 500.

    .venv/bin/python benchmarks/fuzz_api.py --max-examples 150

The suite's ``tests/api/test_openapi.py::test_the_api_conforms_to_its_document`` runs the same
checks in-process on every change, with fewer examples.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.ws_restarts import ApiProcess, free_port  # noqa: E402

TOKEN = "fuzz-token-0123456789abcdef"


def _serve_fake_loki(port: int) -> Any:
    import uvicorn

    from tests.support.fakeloki import FakeLoki

    server = uvicorn.Server(
        uvicorn.Config(
            FakeLoki().app,
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    return server, thread


def _statuses(ndjson: Path) -> Counter:
    """Response status codes of every case in schemathesis' NDJSON event log."""
    counts: Counter = Counter()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            response = node.get("response")
            if isinstance(response, dict) and isinstance(response.get("status_code"), int):
                counts[response["status_code"]] += 1
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for line in ndjson.read_text().splitlines():
        walk(json.loads(line))
    return counts


def run(max_examples: int, workdir: Path, seed: int = 1) -> dict[str, Any]:
    from aiops.localprom import run_prometheus

    loki_port = free_port()
    server, thread = _serve_fake_loki(loki_port)
    try:
        with run_prometheus(workdir / "prometheus") as prom:
            api = ApiProcess(
                f"sqlite:///{workdir / 'aiops.db'}",
                free_port(),
                workdir / "api.log",
                AIOPS_PROMETHEUS_URL=prom.url,
                AIOPS_LOKI_URL=f"http://127.0.0.1:{loki_port}",
                AIOPS_API_TOKEN=TOKEN,
            )
            api.start()
            ndjson = workdir / "events.ndjson"
            try:
                done = subprocess.run(
                    [
                        str(Path(sys.executable).parent / "schemathesis"),
                        "run",
                        f"http://127.0.0.1:{api.port}/openapi.json",
                        "-H",
                        f"Authorization: Bearer {TOKEN}",
                        "--checks",
                        "all",
                        "--max-examples",
                        str(max_examples),
                        "--seed",
                        str(seed),
                        "--suppress-health-check",
                        "all",
                        "--report",
                        "ndjson",
                        "--report-ndjson-path",
                        str(ndjson),
                        "--no-color",
                    ],
                    cwd=workdir,
                    capture_output=True,
                    text=True,
                    timeout=3 * 3600,
                )
            finally:
                api.stop(signal.SIGTERM)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    statuses = _statuses(ndjson) if ndjson.exists() else Counter()
    return {
        "max_examples": max_examples,
        "responses": sum(statuses.values()),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "responses_500": statuses.get(500, 0),
        "exit_code": done.returncode,
        "summary": done.stdout[-3000:],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=150)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aiops-fuzz-") as tmp:
        result = run(args.max_examples, Path(tmp), args.seed)
    if args.json:
        print(json.dumps(result))
    else:
        print(result["summary"])
        print(
            f"{result['responses']} responses, {result['responses_500']} with status 500; "
            f"statuses {result['statuses']}"
        )
    return 0 if result["responses_500"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
