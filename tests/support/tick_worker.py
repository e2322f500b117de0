"""A detect-metrics worker for the scale-out tests: a real process that runs one flow run of
``detect-metrics`` per line it reads on stdin (the tick's ``now``, Unix seconds) against the
Prefect server and store of its environment, and prints each tick's outcome as one JSON line:
``{"pid", "rows": [[detector, status, window], ...], "elsewhere": [...]}``."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, datetime


def main() -> None:
    from flows.metrics import detect_metrics

    print(json.dumps({"pid": os.getpid(), "ready": True}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        summary = asyncio.run(detect_metrics(now=datetime.fromtimestamp(float(line), UTC)))
        rows = [[r["detector"], r["status"], r["window"]] for r in summary["detectors"]]
        print(
            json.dumps(
                {"pid": os.getpid(), "rows": rows, "elsewhere": sorted(summary["elsewhere"])}
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
