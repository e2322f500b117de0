"""Demo log lines: what the demo services would log, in three formats, errors during incidents.

``checkout`` logs Java-style text, ``search`` JSON lines (Go style), ``payments`` and the
queue workers logfmt; every line carries its timestamp, so ``aiops analyze-logs`` and the
demo log job read them as any other file. Lines follow the workload: about one access line
per :data:`SAMPLE` requests, every error (as the workload's error ratio says), and each
incident kind brings its own lines (connection refused and timeouts for an error
burst, slow responses for a latency spike, health-check failures for a traffic drop,
backlog warnings and task timeouts for a queue backlog).
"""

from __future__ import annotations

import json
import math
import random
import uuid
from datetime import UTC, datetime

from aiops.demo.workload import QUEUES, SERVICES, Incident, Workload

__all__ = ["SAMPLE", "lines_between"]

#: One log line per this many requests.
SAMPLE = 25


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _java_ts(t: float) -> str:
    return (
        datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S.")
        + f"{int(t * 1000) % 1000:03d}"
    )


def _checkout(rng: random.Random, t: float, error: bool, inc: Incident | None) -> str:
    thread = f"http-nio-8080-exec-{rng.randint(1, 12)}"
    order = rng.randint(1000, 99999)
    if error:
        if inc is not None and inc.kind == "error_burst":
            msg = (
                "ERROR",
                "c.e.shop.InventoryClient",
                "Inventory call failed: java.net.ConnectException: Connection refused "
                "(Connection refused)",
            )
        else:
            msg = (
                "ERROR",
                "c.e.shop.OrderService",
                f"Unexpected error: java.lang.IllegalStateException: order {order} has no items",
            )
    elif inc is not None and inc.kind == "latency_spike" and rng.random() < 0.5:
        msg = (
            "WARN ",
            "c.e.shop.PaymentClient",
            f"Slow response from payment-service took {rng.randint(900, 4000)}ms",
        )
    elif inc is not None and inc.kind == "traffic_drop" and rng.random() < 0.3:
        msg = (
            "WARN ",
            "c.e.shop.HealthCheck",
            "Health check of upstream lb-2 failed: connection reset by peer",
        )
    else:
        ms = max(1, int(rng.lognormvariate(math.log(60), 0.5)))
        msg = ("INFO ", "c.e.shop.OrderController", f"GET /orders/{order} completed in {ms}ms")
    level, logger, text = msg
    return f"{_java_ts(t)} {level} [{thread}] {logger} - {text}"


def _search(rng: random.Random, t: float, error: bool, inc: Incident | None) -> str:
    rid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    if error:
        body = {
            "level": "error",
            "ts": _iso(t),
            "caller": "client/upstream.go:64",
            "msg": "upstream call timed out",
            "upstream": "index",
            "status": 504,
            "duration_ms": 5000,
            "error": "context deadline exceeded",
        }
    elif inc is not None and inc.kind == "latency_spike" and rng.random() < 0.5:
        body = {
            "level": "warn",
            "ts": _iso(t),
            "caller": "store/query.go:133",
            "msg": "slow query",
            "index": "products",
            "elapsed": f"{rng.uniform(0.8, 3.5):.2f}s",
        }
    else:
        ms = rng.lognormvariate(math.log(25), 0.5)
        body = {
            "level": "info",
            "ts": _iso(t),
            "caller": "server/http.go:88",
            "msg": "request completed",
            "method": "GET",
            "path": "/api/v1/search",
            "results": rng.randint(0, 200),
            "status": 200,
            "duration": f"{ms:.1f}ms",
            "request_id": rid,
        }
    return json.dumps(body, separators=(",", ":"))


def _payments(rng: random.Random, t: float, error: bool, inc: Incident | None) -> str:
    if error:
        if inc is not None and inc.kind == "error_burst":
            text = (
                'level=error logger=payments.api msg="charge failed" status=502 error="psp read '
                'timed out"'
            )
        else:
            text = (
                'level=error logger=payments.api msg="charge failed" status=500 error="card '
                'declined by issuer"'
            )
    elif inc is not None and inc.kind == "latency_spike" and rng.random() < 0.5:
        text = (
            'level=warn logger=payments.psp msg="slow psp response" '
            f"duration={rng.uniform(0.8, 4.0):.3f}s"
        )
    else:
        text = (
            'level=info logger=payments.api msg="charge succeeded" '
            f"amount={rng.uniform(5, 300):.2f} "
            f"duration={rng.lognormvariate(math.log(0.12), 0.5):.3f}s"
        )
    return f"ts={_iso(t)} {text}"


def _worker(rng: random.Random, t: float, queue: str, depth: float, inc: Incident | None) -> str:
    if inc is not None and inc.kind == "queue_backlog" and inc.target == queue:
        if rng.random() < 0.5:
            text = (
                f'level=warn logger=worker.{queue} msg="queue backlog growing" queue={queue} '
                f"depth={int(depth)}"
            )
        else:
            text = (
                f'level=error logger=worker.{queue} msg="task failed" queue={queue} '
                'error="TimeoutError: broker ack timed out"'
            )
    else:
        text = (
            f'level=info logger=worker.{queue} msg="task succeeded" queue={queue} '
            f"duration={rng.lognormvariate(math.log(0.3), 0.6):.3f}s"
        )
    return f"ts={_iso(t)} {text}"


_WRITERS = {"checkout": _checkout, "search": _search, "payments": _payments}


def lines_between(
    workload: Workload, start: float, end: float, *, sample: int = SAMPLE
) -> list[str]:
    """The log lines of ``[start, end)`` in time order, deterministic for the workload's seed
    (each whole second has its own random stream)."""
    out: list[tuple[float, str]] = []
    second = math.floor(start)
    while second < end:
        lo, hi = max(start, second), min(end, second + 1)
        if hi > lo:
            rng = random.Random(workload.seed * 1_000_003 + second)
            inc = workload.incident_at(lo)
            cell = workload.cells_at(lo)
            depths = workload.queue_depth(lo)
            for name in SERVICES:
                c = cell[name]
                requests, ratio = float(c["rate"][0]) * (hi - lo), float(c["error_ratio"][0])
                own = inc if inc is not None and inc.target == name else None
                # Access lines are sampled; errors are all logged (a steady background, so a
                # window without them is not news, and a burst is a rate jump).
                for error, n in (
                    (False, _poisson(rng, requests * (1 - ratio) / sample)),
                    (True, _poisson(rng, requests * ratio)),
                ):
                    for _ in range(n):
                        t = rng.uniform(lo, hi)
                        out.append((t, _WRITERS[name](rng, t, error, own)))
            for queue in QUEUES:
                if rng.random() < 0.5 * (hi - lo):
                    t = rng.uniform(lo, hi)
                    out.append((t, _worker(rng, t, queue, float(depths[queue][0]), inc)))
        second += 1
    out.sort(key=lambda p: p[0])
    return [line for _, line in out]


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
