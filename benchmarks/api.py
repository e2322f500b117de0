"""Latency and throughput of the API, next to Prometheus itself, in the same run.

Starts Debian's real Prometheus on 127.0.0.1 with the test history and the API (uvicorn, in
its own process, token on, SQLite store in a temporary directory), then measures:

1. **Query overhead**: ``POST /api/datasources/prometheus/query`` against a direct
   ``GET /api/v1/query`` of the same instant query, alternating, one request at a time, every
   request a cache miss (a distinct past ``time`` each). Reports p50/p99 of both and the
   difference (goal: <= 2 ms added at p50).
2. **Cache-hit throughput**: the same past instant query over and over (answered from the
   API's result cache) with ``--concurrency`` clients, requests/s; direct Prometheus alongside.
3. **WebSocket fan-out**: ``--clients`` WebSocket clients (default 1,000); events inserted in
   the store one at a time (as a flow would); per client and event, the time from the tailer
   publishing the event (``published_at``) to the client receiving it, and from the insert to
   receipt (which adds the tailer's poll interval). Goal: p99 <= 100 ms from publish.

    .venv/bin/python benchmarks/api.py [--requests 2000] [--clients 1000] [--events 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.prometheus import build_history, free_port, run_prometheus  # noqa: E402

TOKEN = "benchmark-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


# --------------------------------------------------------------------------- the API process


def serve(prometheus_url: str, db_url: str, port: int, tail_interval: float) -> None:
    """Run in the child process: the API on 127.0.0.1:port."""
    import uvicorn

    from aiops.api import ApiOptions, create_app
    from aiops.config import Settings

    settings = Settings(
        prometheus_url=prometheus_url, database_url=db_url, api_token=TOKEN, cache_ttl_seconds=300
    )
    app = create_app(settings, options=ApiOptions(tail_interval=tail_interval))
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say so (else +40 ms)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(4096)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        ws_ping_interval=None,
        backlog=4096,
        ws_per_message_deflate=False,
    )  # as build_server: events are small
    uvicorn.Server(config).run(sockets=[sock])


def start_api(
    prometheus_url: str, db_url: str, tail_interval: float
) -> tuple[subprocess.Popen, str]:
    port = free_port()
    code = (
        "import sys; sys.path.insert(0, %r); from benchmarks.api import serve; serve(%r, %r, %d, "
        "%r)" % (str(ROOT), prometheus_url, db_url, port, tail_interval)
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/api/datasources/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"the API exited with {proc.returncode}")
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the API did not start")


# --------------------------------------------------------------------------- 1 and 2: queries


async def query_overhead(api: str, prom: str, first_ts: int, n: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"direct": [], "api": []}
    query = 'aiops_test_gauge{instance="a"}'
    async with httpx.AsyncClient(timeout=30) as client:
        for i in range(20):  # warm-up: connections, code paths
            await client.get(prom + "/api/v1/query", params={"query": query, "time": first_ts - i})
            await client.post(
                api + "/api/datasources/prometheus/query",
                json={"query": query, "time": first_ts - i - 100},
                headers=AUTH,
            )
        for i in range(n):
            at = first_ts + i  # distinct past times: every API request misses the cache
            t = time.perf_counter()
            r = await client.get(prom + "/api/v1/query", params={"query": query, "time": at})
            times["direct"].append(time.perf_counter() - t)
            assert r.status_code == 200
            t = time.perf_counter()
            r = await client.post(
                api + "/api/datasources/prometheus/query",
                json={"query": query, "time": at},
                headers=AUTH,
            )
            times["api"].append(time.perf_counter() - t)
            assert r.status_code == 200 and r.json()["cached"] is False, r.text
    return times


async def throughput(
    url: str, request: bytes, seconds: float, concurrency: int
) -> tuple[float, int]:
    """Requests/s of one pre-encoded HTTP/1.1 request repeated over keep-alive connections.

    A raw asyncio client (no httpx) so that the client is not the bottleneck."""
    host, port = url.removeprefix("http://").split(":")
    done = 0
    stop = 0.0

    async def worker() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.perf_counter() < stop:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200"), head[:200]
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                done += 1
        finally:
            writer.close()

    stop = time.perf_counter() + 0.5  # warm-up
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    done = 0
    started = time.perf_counter()
    stop = started + seconds
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return done / elapsed, done


def http_request(
    method: str, path: str, host: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# --------------------------------------------------------------------------- 3: fan-out


def client_process(ws_url: str, count: int, ready, results) -> None:
    """A process holding ``count`` WebSocket clients; per event id, once all of them have it,
    reports ``(id, [(received_at, published_at), ...])``."""
    import resource as _resource

    soft, hard = _resource.getrlimit(_resource.RLIMIT_NOFILE)
    _resource.setrlimit(_resource.RLIMIT_NOFILE, (min(hard, max(soft, count + 256)), hard))

    async def run() -> None:
        from websockets.asyncio.client import connect

        arrivals: dict[int, list[tuple[float, float]]] = {}

        async def reader(ws) -> None:
            async for raw in ws:
                now = time.time()
                msg = json.loads(raw)
                if msg["op"] == "event":
                    got = arrivals.setdefault(msg["id"], [])
                    got.append((now, msg["published_at"]))
                    if len(got) == count:
                        results.put((msg["id"], arrivals.pop(msg["id"])))

        sockets = []
        for start in range(0, count, 50):  # connect in waves
            sockets += await asyncio.gather(
                *(
                    connect(ws_url, additional_headers=AUTH, open_timeout=120, max_queue=None)
                    for _ in range(min(50, count - start))
                )
            )
        for ws in sockets:  # subscribed once its live marker arrives
            while json.loads(await ws.recv())["op"] != "live":
                pass
        tasks = [asyncio.create_task(reader(ws)) for ws in sockets]
        ready.put(count)
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(run())


def fanout(
    api: str, db_url: str, clients: int, events: int, processes: int
) -> dict[str, list[float]]:
    """``clients`` WebSocket clients spread over ``processes`` client processes (as clients on
    other machines would be); events inserted one at a time, each awaited by every client."""
    import multiprocessing as mp

    from aiops.store import Store

    store = Store.open(db_url)
    store.create_detector({"id": "bench", "kind": "zscore"})
    ws_url = api.replace("http://", "ws://") + "/api/events/ws"
    ctx = mp.get_context("spawn")
    ready, results = ctx.Queue(), ctx.Queue()
    shares = [
        clients // processes + (1 if i < clients % processes else 0) for i in range(processes)
    ]
    procs = [
        ctx.Process(target=client_process, args=(ws_url, n, ready, results), daemon=True)
        for n in shares
        if n
    ]
    for proc in procs:
        proc.start()
    try:
        for _ in procs:
            ready.get(timeout=300)
        out: dict[str, list[float]] = {
            "publish_to_client": [],
            "insert_to_client": [],
            "last_client": [],
            "server": [],
        }
        base = datetime(2026, 1, 1, tzinfo=UTC)
        for k in range(events):
            t_insert = time.time()
            (row,) = store.insert_events(
                [
                    {
                        "detector_id": "bench",
                        "labels": {"k": str(k)},
                        "ts": base.timestamp() + k,
                        "score": 2.0,
                        "value": 1.0,
                    }
                ]
            )
            arrivals: list[tuple[float, float]] = []
            for _ in procs:
                event_id, got = results.get(timeout=60)
                assert event_id == row.id, (event_id, row.id)
                arrivals += got
            published = arrivals[0][1]
            out["publish_to_client"] += [(t - pub) * 1000 for t, pub in arrivals]
            out["insert_to_client"] += [(t - t_insert) * 1000 for t, _ in arrivals]
            out["last_client"].append((max(t for t, _ in arrivals) - published) * 1000)
            metrics = httpx.get(api + "/metrics", timeout=10).text
            line = next(
                x
                for x in metrics.splitlines()
                if x.startswith("aiops_api_websocket_fanout_seconds ")
            )
            out["server"].append(float(line.split()[1]) * 1000)
        return out
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.join(10)
        store.close()


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=5.0, help="per throughput measurement")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument(
        "--client-processes", type=int, default=2, help="processes holding the WebSocket clients"
    )
    parser.add_argument("--tail-interval", type=float, default=0.25)
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.clients * 2 + 256)), hard))
    history = build_history(hours=2)
    with tempfile.TemporaryDirectory() as tmp, run_prometheus(Path(tmp) / "prom", history) as prom:
        db_url = f"sqlite:///{Path(tmp) / 'aiops.db'}"
        from aiops.store import Store

        Store.open(db_url).close()  # migrate once, before two processes use it
        proc, api = start_api(prom.url, db_url, args.tail_interval)
        try:
            import importlib.util

            parser_ = "httptools" if importlib.util.find_spec("httptools") else "h11"
            loop_ = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
            print(
                f"machine: {os.cpu_count()} cores, shared with other work; Python "
                f"{sys.version.split()[0]}; uvicorn with {parser_} + {loop_}"
            )
            times = asyncio.run(query_overhead(api, prom.url, history.start + 600, args.requests))
            d50, d99 = pct(times["direct"], 50) * 1000, pct(times["direct"], 99) * 1000
            a50, a99 = pct(times["api"], 50) * 1000, pct(times["api"], 99) * 1000
            diffs = [(a - d) * 1000 for a, d in zip(times["api"], times["direct"], strict=True)]
            print(
                f"\n1. instant query, cache miss, {args.requests} alternating requests, one at a "
                "time (ms)"
            )
            print(f"{'path':<46}{'p50':>8}{'p99':>8}")
            print(f"{'Prometheus directly (GET /api/v1/query)':<46}{d50:>8.3f}{d99:>8.3f}")
            print(f"{'API (POST /api/datasources/prometheus/query)':<46}{a50:>8.3f}{a99:>8.3f}")
            print(
                f"{'added by the API (p50/p99 of the two)':<46}{a50 - d50:>8.3f}{a99 - d99:>8.3f}"
            )
            print(f"{'added, median of per-pair differences':<46}{statistics.median(diffs):>8.3f}")

            query, at = 'aiops_test_gauge{instance="a"}', history.start + 60
            api_host, prom_host = api.removeprefix("http://"), prom.url.removeprefix("http://")
            api_req = http_request(
                "POST",
                "/api/datasources/prometheus/query",
                api_host,
                json.dumps({"query": query, "time": at}).encode(),
                AUTH,
            )
            prom_req = http_request(
                "GET",
                "/api/v1/query?" + httpx.QueryParams({"query": query, "time": at}).__str__(),
                prom_host,
            )
            hit_rps, hit_n = asyncio.run(throughput(api, api_req, args.seconds, args.concurrency))
            direct_rps, _ = asyncio.run(
                throughput(prom.url, prom_req, args.seconds, args.concurrency)
            )
            print(
                f"\n2. the same past instant query, {args.concurrency} keep-alive connections, "
                f"{args.seconds:.0f} s each"
            )
            print(
                f"{'API, answered from its cache':<46}{hit_rps:>10,.0f} req/s ({hit_n:,} requests)"
            )
            print(f"{'Prometheus directly (evaluates it each time)':<46}{direct_rps:>10,.0f} req/s")

            fan = fanout(api, db_url, args.clients, args.events, args.client_processes)
            print(
                f"\n3. WebSocket fan-out: {args.clients} clients in {args.client_processes} "
                f"processes x {args.events} events (ms)"
            )
            print(f"{'':<46}{'p50':>8}{'p99':>8}{'max':>8}")
            for key, label in (
                ("server", "publish -> written to the last client (server)"),
                ("publish_to_client", "tailer publish -> client receives"),
                ("last_client", "publish -> the last of all clients receives"),
                ("insert_to_client", f"store insert -> client (poll {args.tail_interval}s)"),
            ):
                v = fan[key]
                print(f"{label:<46}{pct(v, 50):>8.1f}{pct(v, 99):>8.1f}{max(v):>8.1f}")
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
