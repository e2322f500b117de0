"""Detection quality of every detector kind on a synthetic labelled benchmark.

Generates series with injected anomalies and their labels file (aiops.synthetic; by default
the realistic mix: gauges with heavy-tailed bursty noise, small integer counts, flat quantised
series, lasting level and spread changes, gaps; ``--classic`` for the original seasonal
Gaussian set), loads the history into Debian's real Prometheus on 127.0.0.1
(aiops.localprom), creates one detector per kind in a temporary SQLite store, runs the real
``backfill`` flow for each against a temporary Prefect server (prefect_test_harness), and
scores what an on-call engineer would get with aiops.evaluation: the anomalies of each series
grouped into incidents (aiops.incidents, the default ``resolve_after``), **each incident onset
one detection**; window recall, false events, precision and F1 (event level), mean time to
detect, and the NAB standard score of the same onsets.

    .venv/bin/python benchmarks/quality.py [--days 21] [--series 36] [--seed 7] [--classic]

``--in-process`` skips Prometheus and Prefect and scores the generated series directly with
the detectors (what the backfill computes, since scoring is causal and piecewise == at once;
missing points are absent, where Prometheus would repeat the last value for up to 5 minutes):
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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiops.detectors import KINDS  # noqa: E402
from aiops.evaluation import (  # noqa: E402
    Evaluation,
    NabEvaluation,
    SeriesQuality,
    evaluate,
    incident_onsets,
    nab_evaluate,
    parse_labels_json,
)
from aiops.incidents import DEFAULT_RESOLVE_AFTER  # noqa: E402
from aiops.synthetic import SyntheticConfig, SyntheticSet, anomaly_kinds, generate, labels_document  # noqa: E402

METRIC = "aiops_synth"


def threshold_bounds(data: SyntheticSet) -> dict[str, dict[str, float]]:
    c = data.config
    n = int(c.warmup_days * 86_400 // c.step)
    out = {}
    for s in data.series:
        warm = s.values()[:n]
        lo, hi = float(np.nanmin(warm)), float(np.nanmax(warm))
        pad = 0.1 * (hi - lo)
        out[s.labels["series"]] = {"lower": lo - pad, "upper": hi + pad}
    return out


def in_process(
    data: SyntheticSet, kind: str, params: dict[str, Any]
) -> tuple[list[tuple[dict, float]], float]:
    """Detections of ``kind`` on every series, scored directly; and the seconds it took."""
    import pandas as pd

    from aiops import detectors

    bounds = threshold_bounds(data) if kind == "threshold" else {}
    found: list[tuple[dict, float]] = []
    elapsed = 0.0
    for s in data.series:
        ts, values = s.observed()
        series = pd.Series(values, index=pd.to_datetime(ts, unit="s", utc=True))
        p = {**params, **bounds.get(s.labels["series"], {})}
        t = time.perf_counter()
        scores = detectors.create(kind, **p).score(series)
        elapsed += time.perf_counter() - t
        hits = scores.index[scores["score"].to_numpy() > 1.0]
        labels = {"__name__": METRIC, **s.labels}
        found.extend((labels, ts.timestamp()) for ts in hits)
    return found, elapsed


def via_backfill(
    data: SyntheticSet, params: dict[str, dict[str, Any]], tmp: Path
) -> dict[str, tuple[list[tuple[dict, float]], float]]:
    """Prometheus + Prefect + the real backfill flow; detections read back from the store."""
    from aiops.localprom import load_history, run_prometheus
    from aiops.synthetic import families

    c = data.config
    t = time.perf_counter()
    samples = load_history(families(data), tmp / "prom" / "data", tmp / "om")
    print(
        f"history: {samples:,} samples written and loaded by promtool in "
        f"{time.perf_counter() - t:.1f}s",
        file=sys.stderr,
    )
    results: dict[str, tuple[list[tuple[dict, float]], float]] = {}
    with run_prometheus(tmp / "prom", data_dir=tmp / "prom" / "data") as prom:
        os.environ["AIOPS_PROMETHEUS_URL"] = prom.url
        os.environ["AIOPS_DATABASE_URL"] = f"sqlite:///{tmp}/aiops.db"
        os.environ.setdefault(
            "PREFECT_SERVER_ANALYTICS_ENABLED", "false"
        )  # no telemetry from the test server
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
                        specs.append(
                            (
                                f"q-threshold-{name}",
                                {**params[kind], **b},
                                f'{METRIC}{{series="{name}"}}',
                            )
                        )
                else:
                    specs.append((f"q-{kind}", params[kind], METRIC))
                for det_id, p, query in specs:
                    db.create_detector(
                        {
                            "id": det_id,
                            "name": det_id,
                            "kind": kind,
                            "params": p,
                            "status": "paused",
                            "datasource": {"query": query, "step": c.step, "lookback": 3600},
                        }
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
                print(
                    f"{kind}: backfill {elapsed:.1f}s, {summary['anomalies']} anomalies stored",
                    file=sys.stderr,
                )
    return results


def onsets_of(
    found: list[tuple[dict, float]], step: float, resolve_after: int
) -> list[tuple[dict, float]]:
    """The incident onsets of the anomalous points of each series: what alerts."""
    by_series: dict[tuple, tuple[dict, list[float]]] = {}
    for labels, ts in found:
        t = ts.timestamp() if hasattr(ts, "timestamp") else float(ts)
        by_series.setdefault(tuple(sorted(labels.items())), (labels, []))[1].append(t)
    return [
        (labels, t)
        for labels, times in by_series.values()
        for t in incident_onsets(times, step, resolve_after)
    ]


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
    parser.add_argument(
        "--gap", default="5m", help="detections this close are one event (default 5m)"
    )
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument(
        "--classic",
        action="store_true",
        help="the original seasonal Gaussian set, not the realistic mix",
    )
    parser.add_argument(
        "--resolve-after",
        type=int,
        default=DEFAULT_RESOLVE_AFTER,
        help=f"normal steps inside one incident (default {DEFAULT_RESOLVE_AFTER})",
    )
    parser.add_argument("--params", default="{}", help='JSON: {"kind": {param: value}} overrides')
    parser.add_argument(
        "--in-process", action="store_true", help="score directly (no Prometheus, no Prefect)"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()

    from aiops.timeutil import parse_seconds

    cfg = SyntheticConfig(
        days=args.days,
        series=args.series,
        seed=args.seed,
        step=args.step,
        realistic=not args.classic,
    )
    data = generate(cfg)
    labels = parse_labels_json(json.loads(json.dumps(labels_document(data))), "synthetic")
    overrides = json.loads(args.params)
    kinds = [k for k in args.kinds.split(",") if k]
    params = {k: dict(overrides.get(k, {})) for k in kinds}
    tolerance, gap = (
        parse_seconds(args.tolerance, field="--tolerance"),
        parse_seconds(args.gap, field="--gap"),
    )
    print(
        f"synthetic ({'classic' if args.classic else 'realistic'}): {cfg.series} series x "
        f"{cfg.points} points ({cfg.days} days at {cfg.step}s, seed {cfg.seed}), {labels.windows} "
        f"labelled windows; evaluated from day {cfg.warmup_days} (tolerance {args.tolerance}, gap "
        f"{args.gap}); incident onsets as detections (resolve_after {args.resolve_after})",
        file=sys.stderr,
    )
    if args.in_process:
        runs = {k: in_process(data, k, params[k]) for k in kinds}
    else:
        with tempfile.TemporaryDirectory() as tmp:
            runs = via_backfill(data, params, Path(tmp))
    results: dict[str, Evaluation] = {}
    nab: dict[str, NabEvaluation] = {}
    for kind, (found, _) in runs.items():
        alerts = onsets_of(found, cfg.step, args.resolve_after)
        results[kind] = evaluate(
            labels, alerts, tolerance=tolerance, gap=gap, start=cfg.eval_start, end=cfg.end
        )
        nab[kind] = nab_evaluate(
            labels,
            found,
            step=cfg.step,
            resolve_after=args.resolve_after,
            start=cfg.eval_start,
            end=cfg.end,
        )
    if args.json:
        print(
            json.dumps(
                {
                    k: {
                        "runtime_seconds": runs[k][1],
                        **results[k].to_dict(),
                        "nab": nab[k].to_dict(),
                    }
                    for k in kinds
                },
                indent=1,
            )
        )
        return
    mode = "scoring only (in process)" if args.in_process else "backfill flow, end to end"
    header = (
        f"{'kind':<10}{'recall':>8}{'FP events':>11}{'precision':>11}{'F1':>7}{'mean TTD':>11}"
        f"{'NAB std':>9}{'runtime':>10}"
    )
    print(f"runtime: {mode}")
    print(header)
    for kind in kinds:
        o = results[kind].overall
        print(
            f"{kind:<10}{fmt(o.recall, '.3f'):>8}{o.false_events:>11}{fmt(o.precision, '.3f'):>11}"
            f"{fmt(o.f1, '.3f'):>7}{ttd(o.mean_ttd_seconds):>11}"
            f"{fmt(nab[kind].profiles['standard'].normalized, '.1f'):>9}{runs[kind][1]:>9.1f}s"
        )
    groups = ("gauge", "count", "flat") if cfg.realistic else ("daily", "weekly")
    group_label = "shape" if cfg.realistic else "pattern"
    a_kinds = anomaly_kinds(cfg)
    print(f"\nrecall per anomaly kind; FP events on the clean series; F1 per {group_label}")
    print(
        f"{'kind':<10}"
        + "".join(f"{a[:13]:>14}" for a in a_kinds)
        + f"{'clean FP':>10}"
        + "".join(f"{'F1 ' + g:>10}" for g in groups)
    )
    for kind in kinds:
        per: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        by_group = {g: SeriesQuality(None) for g in groups}
        for s in results[kind].series:
            lab = s.labels or {}
            a = lab.get("anomaly", "?")
            per[a][0] += s.detected_windows
            per[a][1] += s.windows
            per[a][2] += s.false_events
            if lab.get(group_label) in by_group:
                by_group[lab[group_label]].add(s)
        cells = "".join(
            f"{per[a][0]}/{per[a][1]} {per[a][0] / max(1, per[a][1]):.2f}".rjust(14)
            for a in a_kinds
        )
        print(
            f"{kind:<10}{cells}{per['none'][2]:>10}"
            + "".join(f"{fmt(by_group[g].f1, '.3f'):>10}" for g in groups)
        )


if __name__ == "__main__":
    main()
