"""Throughput of a large range query through PrometheusClient into a DataFrame.

Starts Debian's real Prometheus on 127.0.0.1 with synthetic history, then times, in the same
run and alternating, (a) plain httpx + json.loads of the same request (the baseline) and
(b) PrometheusClient.query_range(...).to_frame() with the cache off. Prints samples/s for
both and the ratio (goal: ours / baseline <= 1.3 in time).

    .venv/bin/python benchmarks/prometheus_fetch.py [--series 100] [--hours 40] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiops.sources.prometheus import PrometheusClient  # noqa: E402
from tests.support.prometheus import SeriesSpec, build_history, run_prometheus  # noqa: E402


def make_series(n: int) -> list[SeriesSpec]:
    return [
        SeriesSpec(
            "bench_metric",
            {"instance": f"host-{k:03d}", "job": "bench"},
            lambda i, k=k: (i * 1.25 + k) % 997,
        )
        for k in range(n)
    ]


async def measure(
    url: str, query: str, start: int, end: int, step: int, repeat: int
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"baseline": [], "client": []}
    samples = 0
    async with httpx.AsyncClient(timeout=120) as http:
        client = PrometheusClient(http, url, cache_ttl=0, timeout=120)
        params = {"query": query, "start": start, "end": end, "step": step}
        # warm-up both paths once
        json.loads((await http.get(url + "/api/v1/query_range", params=params)).content)
        await client.query_range(query, start, end, step)
        for _ in range(repeat):
            t = time.perf_counter()
            body = json.loads((await http.get(url + "/api/v1/query_range", params=params)).content)
            times["baseline"].append(time.perf_counter() - t)
            samples = sum(len(s["values"]) for s in body["data"]["result"])

            t = time.perf_counter()
            frame = (await client.query_range(query, start, end, step)).to_frame()
            times["client"].append(time.perf_counter() - t)
            assert len(frame) == samples, (len(frame), samples)
    times["samples"] = [samples]
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=100)
    parser.add_argument("--hours", type=float, default=40.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    history = build_history(hours=args.hours, series=make_series(args.series))
    with (
        tempfile.TemporaryDirectory() as tmp,
        run_prometheus(Path(tmp), history, ready_timeout=300) as prom,
    ):
        times = asyncio.run(
            measure(prom.url, "bench_metric", history.start, history.end, history.step, args.repeat)
        )
    samples = times.pop("samples")[0]
    base = statistics.median(times["baseline"])
    ours = statistics.median(times["client"])
    print(
        f"range query: {args.series} series x {history.points} points = {samples:,} samples, "
        f"median of {args.repeat}"
    )
    print(f"{'path':<42}{'seconds':>10}{'samples/s':>14}")
    print(f"{'baseline: httpx + json.loads':<42}{base:>10.3f}{samples / base:>14,.0f}")
    print(f"{'PrometheusClient.query_range().to_frame()':<42}{ours:>10.3f}{samples / ours:>14,.0f}")
    print(f"ratio (client time / baseline time): {ours / base:.2f}x  (goal <= 1.3x)")


if __name__ == "__main__":
    main()
