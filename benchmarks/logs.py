"""Log analysis throughput and peak memory on generated service logs.

    python benchmarks/logs.py                 # 1,000,000 lines
    python benchmarks/logs.py --lines 200000  # smaller

Generates a deterministic mix of four kinds of service log (Java/Spring text with stack traces,
Go/zap JSON, Python logfmt, nginx access) with realistic variety (ids, trace ids, UUIDs, IPs,
paths, durations, sizes, ~3% errors), then, in a fresh child process so the peak RSS belongs
to this run alone:

1. ``from_lines``: builds the log frame (timestamp parsing),
2. ``analyze``: the full report (templates, levels, error types, patterns, performance...),
3. baseline: a plain loop applying one compiled ``re`` regex to the same lines.

Prints lines/s for each (wall clock, and per CPU second of the child, which is steadier on a
shared machine), the ratio to the baseline, and the child's peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``). One core: numpy/pandas use one thread here.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

USERS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64)",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2)",
    "curl/8.4.0",
    "kube-probe/1.29",
    "python-requests/2.31.0",
]
PATHS = [
    "/api/v1/products",
    "/api/v1/orders",
    "/api/v1/cart",
    "/api/v1/users",
    "/healthz",
    "/static/app.js",
]


class Gen:
    """Deterministic generator of mixed service log lines over 24 hours."""

    def __init__(self, seed: int, total: int) -> None:
        self.r = random.Random(seed)
        self.total = max(total, 1)

    def _t(self, i: int) -> tuple[int, int, int, int, int]:
        second = int(i * 86_400 / self.total)
        return second // 3600, (second // 60) % 60, second % 60, self.r.randrange(1000), i % 28 + 1

    def hexid(self, n: int = 16) -> str:
        return f"{self.r.getrandbits(4 * n):0{n}x}"

    def ip(self) -> str:
        r = self.r
        return f"10.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}"

    def java(self, i: int, out: list[str]) -> None:
        h, m, s, ms, _ = self._t(i)
        ts = f"2024-03-04 {h:02d}:{m:02d}:{s:02d}.{ms:03d}"
        r = self.r
        head = f"{ts} {{level}} [http-nio-8080-exec-{r.randrange(1, 200)}] c.e.shop."
        trace = self.hexid()
        x = r.random()
        if x < 0.015:
            out.append(
                head.format(level="ERROR") + "InventoryClient - Inventory call failed: "
                f"java.net.ConnectException: Connection refused traceId={trace}"
            )
            out.append("\tat java.base/sun.nio.ch.Net.connect0(Native Method)")
        elif x < 0.025:
            took = r.randrange(5000, 30001)
            out.append(
                head.format(level="ERROR") + f"PaymentClient - Payment failed after {took}ms: "
                f"java.net.SocketTimeoutException: Read timed out traceId={trace}"
            )
        elif x < 0.03:
            took = r.randrange(1000, 5000)
            out.append(
                head.format(level="WARN ")
                + f"PaymentClient - Slow response from payment-service took {took}ms"
            )
        elif x < 0.2:
            out.append(
                f"{ts} DEBUG [scheduler-{r.randrange(4)}] c.e.shop.CacheRefresher - "
                f"Refreshed {r.randrange(1000)} cache entries in {r.randrange(50)}ms"
            )
        elif x < 0.6:
            out.append(
                head.format(level="INFO ") + f"OrderController - GET /orders/{r.randrange(10**6)} "
                f"completed in {r.randrange(5, 400)}ms user={r.choice(USERS)} traceId={trace}"
            )
        else:
            total = f"{r.randrange(1, 900)}.{r.randrange(100):02d}"
            out.append(
                head.format(level="INFO ") + f"OrderService - Order {r.randrange(10**7)} created "
                f"for customer {r.randrange(10**5)} total={total} EUR"
            )

    def go_json(self, i: int, out: list[str]) -> None:
        h, m, s, ms, _ = self._t(i)
        ts = f"2024-03-04T{h:02d}:{m:02d}:{s:02d}.{ms:03d}Z"
        r = self.r
        rid = str(uuid.UUID(int=r.getrandbits(128)))
        x = r.random()
        if x < 0.02:
            path = f"/api/v1/payments/{r.randrange(10**5)}"
            out.append(
                f'{{"level":"error","ts":"{ts}","caller":"server/http.go:97",'
                f'"msg":"request failed","path":"{path}","status":503,'
                f'"duration":"{r.randrange(200, 900)}ms",'
                '"error":"rpc error: code = Unavailable desc = connection refused",'
                f'"request_id":"{rid}"}}'
            )
        elif x < 0.03:
            out.append(
                f'{{"level":"error","ts":"{ts}","caller":"client/upstream.go:64",'
                '"msg":"upstream call timed out","upstream":"inventory","status":504,'
                f'"duration_ms":{r.randrange(5000, 5100)},"error":"context deadline exceeded",'
                f'"request_id":"{rid}"}}'
            )
        elif x < 0.1:
            table = r.choice(["orders", "users", "items"])
            elapsed = f"{r.randrange(1, 5)}.{r.randrange(1000):03d}s"
            out.append(
                f'{{"level":"warn","ts":"{ts}","caller":"store/query.go:133","msg":"slow query",'
                f'"table":"{table}","rows":{r.randrange(10**4)},"elapsed":"{elapsed}"}}'
            )
        else:
            status = r.choice([200, 200, 200, 200, 201, 204, 404])
            method = r.choice(["GET", "GET", "POST", "PUT"])
            path = f"{r.choice(PATHS)}/{r.randrange(10**5)}"
            took = f"{r.randrange(1, 300)}.{r.randrange(100)}ms"
            out.append(
                f'{{"level":"info","ts":"{ts}","caller":"server/http.go:88",'
                f'"msg":"request completed","method":"{method}","path":"{path}",'
                f'"status":{status},"duration":"{took}","bytes":{r.randrange(10**5)},'
                f'"request_id":"{rid}"}}'
            )

    def python_logfmt(self, i: int, out: list[str]) -> None:
        h, m, s, ms, _ = self._t(i)
        head = f"ts=2024-03-04T{h:02d}:{m:02d}:{s:02d}.{ms:03d}Z"
        r = self.r
        x = r.random()
        if x < 0.015:
            out.append(
                f'{head} level=error logger=worker.tasks msg="task failed" task=parse_invoice '
                f"task_id={r.randrange(10**6)} "
                'error="ValueError: invalid literal for int() with base 10: '
                f"'{r.choice(USERS)}'\" "
                f"duration={r.randrange(100)}ms"
            )
        elif x < 0.025:
            out.append(
                f'{head} level=warning logger=worker.tasks msg="retrying task" task=sync_crm '
                f"attempt={r.randrange(1, 6)} "
                'error="ConnectionResetError: [Errno 104] Connection reset by peer"'
            )
        elif x < 0.03:
            out.append(
                f'{head} level=error logger=worker.tasks msg="unhandled exception" task=import_csv'
            )
            out.append("Traceback (most recent call last):")
            out.append(f"KeyError: 'customer_{r.randrange(100)}'")
        elif x < 0.2:
            out.append(
                f'{head} level=debug logger=worker.beat msg="heartbeat" queue=default '
                f"depth={r.randrange(50)}"
            )
        else:
            task = r.choice(["send_email", "resize_image", "sync_crm", "render_pdf"])
            took = f"{r.randrange(3)}.{r.randrange(1000):03d}s"
            out.append(
                f'{head} level=info logger=worker.tasks msg="task succeeded" task={task} '
                f"task_id={r.randrange(10**6)} duration={took} rss={r.randrange(100, 900)}MB"
            )

    def nginx(self, i: int, out: list[str]) -> None:
        h, m, s, _, _ = self._t(i)
        r = self.r
        x = r.random()
        status = 200 if x > 0.06 else r.choice([301, 404, 404, 499, 500, 502, 503, 504])
        method = "POST" if r.random() < 0.2 else "GET"
        path = f"{r.choice(PATHS)}/{r.randrange(10**5)}?page={r.randrange(20)}"
        when = f"04/Mar/2024:{h:02d}:{m:02d}:{s:02d} +0000"
        took = f"{r.randrange(2)}.{r.randrange(1000):03d}"
        out.append(
            f'{self.ip()} - - [{when}] "{method} {path} HTTP/1.1" {status} '
            f'{r.randrange(50_000)} "-" "{r.choice(AGENTS)}" request_time={took}'
        )

    def lines(self) -> list[str]:
        out: list[str] = []
        kinds = (self.java, self.go_json, self.python_logfmt, self.nginx)
        i = 0
        while len(out) < self.total:
            kinds[i % 4](i, out)
            i += 1
        del out[self.total :]
        return out


BASELINE = re.compile(r"ERROR|Exception|timed out|status=5\d\d")


def child(n: int, seed: int) -> dict[str, object]:
    from aiops.logs import analyze, from_lines

    lines = Gen(seed, n).lines()
    mb = sum(len(line) for line in lines) / 1e6
    rss_lines = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    cpu = time.process_time()
    started = time.perf_counter()
    hits = 0
    search = BASELINE.search
    for line in lines:
        if search(line):
            hits += 1
    t_regex = time.perf_counter() - started
    c_regex = time.process_time() - cpu

    cpu = time.process_time()
    started = time.perf_counter()
    frame = from_lines(lines, labels={"job": "bench"}, default_time="2024-03-04T00:00:00Z")
    t_frame = time.perf_counter() - started
    c_frame = time.process_time() - cpu

    cpu = time.process_time()
    started = time.perf_counter()
    report = analyze(frame, bucket="1h").to_dict()
    t_analyze = time.perf_counter() - started
    c_analyze = time.process_time() - cpu

    return {
        "lines": n,
        "megabytes": round(mb, 1),
        "seconds": {"regex": t_regex, "from_lines": t_frame, "analyze": t_analyze},
        "cpu_seconds": {"regex": c_regex, "from_lines": c_frame, "analyze": c_analyze},
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_after_generation_mb": rss_lines,
        "regex_hits": hits,
        "summary": {
            "templates": report["coverage"]["templates"],
            "error_count": report["error_count"],
            "anomaly_count": report["anomaly_count"],
            "error_types": len(report["error_types"]),
            "durations": report["performance"]["durations_ms"]["overall"]["count"],
            "sizes": report["performance"]["sizes_bytes"]["overall"]["count"],
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--lines", type=int, default=1_000_000, help="lines to generate (default 1,000,000)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the raw JSON result")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.lines, args.seed)))
        return 0
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    proc = subprocess.run(
        [sys.executable, __file__, "--child", "--lines", str(args.lines), "--seed", str(args.seed)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        return proc.returncode
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    n = result["lines"]
    sec = result["seconds"]

    def rate(seconds: float) -> str:
        return f"{n / seconds:>12,.0f} lines/s  ({seconds:6.2f} s)"

    end_to_end = sec["from_lines"] + sec["analyze"]
    print(
        f"log analysis benchmark: {n:,} lines, {result['megabytes']} MB of text "
        "(java, go json, python logfmt, nginx access)"
    )
    print(f"  analyze(frame)              {rate(sec['analyze'])}")
    print(f"  from_lines (frame, times)   {rate(sec['from_lines'])}")
    print(f"  end to end                  {rate(end_to_end)}")
    print(f"  baseline: one re per line   {rate(sec['regex'])}")
    ratio = sec["regex"] / sec["analyze"]
    print(f"  analyze / baseline          {ratio:.2f}x the baseline's throughput")
    print(f"  end to end / baseline       {sec['regex'] / end_to_end:.2f}x")
    cpu = result["cpu_seconds"]
    print(
        f"  CPU time (one core; steadier than wall time on a busy machine): "
        f"analyze {n / cpu['analyze']:,.0f} lines/s, from_lines {n / cpu['from_lines']:,.0f}, "
        f"baseline {n / cpu['regex']:,.0f}"
    )
    print(
        f"  peak RSS (child process)    {result['peak_rss_mb']:,.0f} MB "
        f"({result['rss_after_generation_mb']:,.0f} MB after generating the lines)"
    )
    print(f"  report: {json.dumps(result['summary'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
