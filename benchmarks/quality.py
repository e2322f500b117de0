"""Detection quality of every detector kind on a synthetic labelled benchmark.

Generates seasonal series with injected anomalies (aiops.synthetic: spikes, dips, level
shifts, variance bursts, drifts; some series clean) and their labels file, loads the history
into Debian's real Prometheus on 127.0.0.1 (aiops.localprom), creates one detector per kind
in a temporary SQLite store, runs the real ``backfill`` flow for each against a temporary
Prefect server (prefect_test_harness), and scores the stored anomalies with aiops.evaluation.

    .venv/bin/python benchmarks/quality.py [--days 21] [--series 36] [--seed 7]

``--in-process`` skips Prometheus and Prefect and scores the generated series directly with
the detectors (what the backfill computes, since scoring is causal and piecewise == at once):
seconds instead of minutes, for tuning. ``--params '{"zscore": {"window": 120}}'`` overrides
params per kind.

threshold has no general default (its bounds are the metric's): each series gets its own
threshold detector, bounds = the min/max of its warm-up days widened by 10% of their range,
the band a person would draw from a glance at the first days.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiops.evaluation import Evaluation, SeriesQuality, evaluate, parse_labels_json  # noqa: E402
from aiops.synthetic import ANOMALY_KINDS, SyntheticConfig, SyntheticSet, generate, labels_document  # noqa: E402

KINDS = ("zscore", "mad", "ewma", "quantile", "seasonal", "threshold")
METRIC = "aiops_synth"


def threshold_bounds(data: SyntheticSet) -> dict[str, dict[str, float]]:
    c = data.config
    n = int(c.warmup_days * 86_400 // c.step)
    out = {}
    for s in data.series:
        warm = s.values()[:n]
        lo, hi = float(warm.min()), float(warm.max())
        pad = 0.1 * (hi - lo)
        out[s.labels["series"]] = {"lower": lo - pad, "upper": hi + pad}
    return out


def in_process(data: SyntheticSet, kind: str, params: dict[str, Any]) -> tuple[list[tuple[dict, float]], float]:
    """Detections of ``kind`` on every series, scored directly; and the seconds it took."""
    import pandas as pd

    from aiops import detectors

    bounds = threshold_bounds(data) if kind == "threshold" else {}
    found: list[tuple[dict, float]] = []
    elapsed = 0.0
    for s in data.series:
        index = pd.to_datetime(s.timestamps(), unit="s", utc=True)
        series = pd.Series(s.values(), index=index)
        p = {**params, **bounds.get(s.labels["series"], {})}
        t = time.perf_counter()
        scores = detectors.create(kind, **p).score(series)
        elapsed += time.perf_counter() - t
        hits = scores.index[scores["score"].to_numpy() > 1.0]
        labels = {"__name__": METRIC, **s.labels}
        found.extend((labels, ts.timestamp()) for ts in hits)
    return found, elapsed


def via_backfill(data: SyntheticSet, params: dict[str, dict[str, Any]], tmp: Path) -> dict[str, tuple[list[tuple[dict, float]], float]]:
    """Prometheus + Prefect + the real backfill flow; detections read back from the store."""
    from aiops.localprom import load_history, run_prometheus
    from aiops.synthetic import families

    c = data.config
    t = time.perf_counter()
    samples = load_history(families(data), tmp / "prom" / "data", tmp / "om")
    print(f"history: {samples:,} samples written and loaded by promtool in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    results: dict[str, tuple[list[tuple[dict, float]], float]] = {}
    with run_prometheus(tmp / "prom", data_dir=tmp / "prom" / "data") as prom:
        os.environ["AIOPS_PROMETHEUS_URL"] = prom.url
        os.environ["AIOPS_DATABASE_URL"] = f"sqlite:///{tmp}/aiops.db"
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no telemetry from the test server
        from prefect.logging import disable_run_logger
        from prefect.testing.utilities import prefect_test_harness

        from flows.backfill import backfill
        from tasks._runtime import store

        start, end = datetime.fromtimestamp(c.start, UTC), datetime.fromtimestamp(c.end, UTC)
        with prefect_test_harness(server_startup_timeout=120), disable_run_logger():
            db = store()
            bounds = threshold_bounds(data)
            for kind in params:
                specs = []
                if kind == "threshold":
                    for name, b in bounds.items():
                        specs.append((f"q-threshold-{name}", {**params[kind], **b}, f'{METRIC}{{series="{name}"}}'))
                else:
                    specs.append((f"q-{kind}", params[kind], METRIC))
                for det_id, p, query in specs:
                    db.create_detector(
                        {"id": det_id, "name": det_id, "kind": kind, "params": p, "status": "paused",
                         "datasource": {"query": query, "step": c.step, "lookback": 3600}}
                    )
                ids = [s[0] for s in specs]
                t = time.perf_counter()
                summary = asyncio.run(backfill(ids, start, end, window="1d"))
                elapsed = time.perf_counter() - t
                failed = [r for r in summary["detectors"] if r["error"]]
                if failed:
                    raise SystemExit(f"backfill of {kind} failed: {failed}")
                found = []
                for det_id in ids:
                    after = 0
                    while True:
                        page = db.list_anomalies(detector=det_id, after_id=after, limit=10_000)
                        found.extend((e.labels, e.ts) for e in page)
                        if len(page) < 10_000:
                            break
                        after = page[-1].id
                results[kind] = (found, elapsed)
                print(f"{kind}: backfill {elapsed:.1f}s, {summary['anomalies']} anomalies stored", file=sys.stderr)
    return results


def fmt(value: float | None, pattern: str) -> str:
    return "n/a" if value is None else format(value, pattern)


def ttd(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    return f"{seconds / 60:.1f} min"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=21)
    parser.add_argument("--series", type=int, default=36)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--step", type=int, default=60)
    parser.add_argument("--tolerance", default="30m", help="after a window's end (default 30m)")
    parser.add_argument("--gap", default="5m", help="detections this close are one event (default 5m)")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--params", default="{}", help='JSON: {"kind": {param: value}} overrides')
    parser.add_argument("--in-process", action="store_true", help="score directly (no Prometheus, no Prefect)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()

    from aiops.timeutil import parse_duration

    cfg = SyntheticConfig(days=args.days, series=args.series, seed=args.seed, step=args.step)
    data = generate(cfg)
    labels = parse_labels_json(json.loads(json.dumps(labels_document(data))), "synthetic")
    overrides = json.loads(args.params)
    kinds = [k for k in args.kinds.split(",") if k]
    params = {k: dict(overrides.get(k, {})) for k in kinds}
    tolerance, gap = parse_duration(args.tolerance, field="--tolerance"), parse_duration(args.gap, field="--gap")
    print(
        f"synthetic: {cfg.series} series x {cfg.points} points ({cfg.days} days at {cfg.step}s, seed {cfg.seed}), "
        f"{labels.windows} labelled windows; evaluated from day {cfg.warmup_days} "
        f"(tolerance {args.tolerance}, gap {args.gap})",
        file=sys.stderr,
    )
    if args.in_process:
        runs = {k: in_process(data, k, params[k]) for k in kinds}
    else:
        with tempfile.TemporaryDirectory() as tmp:
            runs = via_backfill(data, params, Path(tmp))
    results: dict[str, Evaluation] = {}
    for kind, (found, _) in runs.items():
        results[kind] = evaluate(labels, found, tolerance=tolerance, gap=gap, start=cfg.eval_start, end=cfg.end)
    if args.json:
        print(json.dumps({k: {"runtime_seconds": runs[k][1], **results[k].to_dict()} for k in kinds}, indent=1))
        return
    mode = "scoring only (in process)" if args.in_process else "backfill flow, end to end"
    header = f"{'kind':<10}{'recall':>8}{'FP events':>11}{'precision':>11}{'F1':>7}{'mean TTD':>11}{'runtime':>10}"
    print(f"runtime: {mode}")
    print(header)
    for kind in kinds:
        o = results[kind].overall
        print(
            f"{kind:<10}{fmt(o.recall, '.3f'):>8}{o.false_events:>11}{fmt(o.precision, '.3f'):>11}"
            f"{fmt(o.f1, '.3f'):>7}{ttd(o.mean_ttd_seconds):>11}{runs[kind][1]:>9.1f}s"
        )
    print("\nrecall per anomaly kind; FP events on the clean series; F1 on the series with a daily-only / a weekly pattern")
    print(f"{'kind':<10}" + "".join(f"{a:>13}" for a in ANOMALY_KINDS) + f"{'clean FP':>10}{'F1 daily':>10}{'F1 weekly':>11}")
    for kind in kinds:
        per: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        by_pattern = {"daily": SeriesQuality(None), "weekly": SeriesQuality(None)}
        for s in results[kind].series:
            lab = s.labels or {}
            a = lab.get("anomaly", "?")
            per[a][0] += s.detected_windows
            per[a][1] += s.windows
            per[a][2] += s.false_events
            if lab.get("pattern") in by_pattern:
                by_pattern[lab["pattern"]].add(s)
        cells = "".join(f"{per[a][0]}/{per[a][1]} {per[a][0] / max(1, per[a][1]):.2f}".rjust(13) for a in ANOMALY_KINDS)
        print(f"{kind:<10}{cells}{per['none'][2]:>10}{fmt(by_pattern['daily'].f1, '.3f'):>10}{fmt(by_pattern['weekly'].f1, '.3f'):>11}")

if __name__ == "__main__":
    main()
