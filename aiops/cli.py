"""The ``aiops`` command line.

Every command prints a table for people or JSON for scripts (``--json``); errors print one
line naming what was wrong and exit non-zero (2 for bad input or configuration, 1 for a
datasource failure), never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import re
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiops.errors import AiopsError, ConfigError, DatasourceError, NotFound

__all__ = ["main"]


def _settings():
    from aiops.config import load_settings
    from aiops.logsetup import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    _prefect_logging(settings)
    return settings


def _prefect_logging(settings: Any) -> None:
    """With ``AIOPS_LOG_FORMAT=json``, flow and task run logs (this process' and the flow run
    subprocesses') are JSON with the run's fields too: Prefect reads its logging config from
    ``deployments/logging-json.yml`` (unless the operator named another one). Call before
    Prefect is imported."""
    import importlib.util
    import os
    from pathlib import Path

    if settings.log_format != "json":
        return
    spec = importlib.util.find_spec("deployments")  # finds the package without importing it
    path = Path(spec.origin).parent / "logging-json.yml" if spec and spec.origin else None
    if path is not None and path.exists():
        os.environ.setdefault("PREFECT_LOGGING_SETTINGS_PATH", str(path))
        os.environ.setdefault("PREFECT_LOGGING_LOGGERS_AIOPS_LEVEL", settings.log_level)


# ---------------------------------------------------------------------------------- query


def _auto_step(start: float, end: float) -> float:
    """About 250 points per series, at least one second."""
    return max(1.0, math.ceil((end - start) / 250))


async def _run_query(args: argparse.Namespace) -> int:
    import httpx

    from aiops.sources import build_prometheus
    from aiops.timeutil import parse_seconds, parse_unix_seconds

    settings = _settings()
    configs = settings.datasource_configs()
    config = configs.get(args.datasource)
    if config is None or config.type != "prometheus":
        names = sorted(n for n, c in configs.items() if c.type == "prometheus")
        raise ConfigError(
            f"no Prometheus datasource named {args.datasource!r} (configured: "
            f"{', '.join(names) or 'none'})",
            setting="datasource",
        )
    async with httpx.AsyncClient() as http:
        client = build_prometheus(config, settings, http)
        now = time.time()
        if args.start is not None:
            start = parse_unix_seconds(args.start, field="--start", now=now)
            end = parse_unix_seconds(args.end or "now", field="--end", now=now)
            step = parse_seconds(args.step, field="--step") if args.step else _auto_step(start, end)
            result = await client.query_range(args.query, start, end, step)
        else:
            if args.end or args.step:
                raise AiopsError("--end and --step need --start (a range query)")
            at = parse_unix_seconds(args.time, field="--time", now=now) if args.time else None
            result = await client.query(args.query, at)
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
    else:
        _print_result(result, args.limit)
    return 0


def _print_result(result: Any, limit: int) -> None:
    import pandas as pd

    if result.result_type in ("scalar", "string"):
        ts, value = result.scalar or result.string
        print(
            f"{result.result_type}: {value} @ "
            f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(ts))}"
        )
        return
    frame = result.to_frame()
    if frame.empty:
        print("(no data)")
        return
    label_cols = [c for c in frame.columns if c not in ("timestamp", "value")]
    shown = frame.head(limit)
    rows = [
        [
            ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
            f"{value:g}",
            *("" if pd.isna(v) else str(v) for v in labels),
        ]
        for ts, value, *labels in zip(
            shown["timestamp"], shown["value"], *(shown[c] for c in label_cols), strict=True
        )
    ]
    _print_table(["timestamp", "value", *label_cols], rows)
    extra = len(frame) - len(rows)
    tail = f"{len(result.series)} series, {len(frame)} samples"
    if extra > 0:
        tail += f" ({extra} more rows not shown; use --limit or --json)"
    if result.cached:
        tail += f", from cache ({result.age_seconds:.1f}s old)"
    print(tail)
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [
        max(len(str(h)), *(len(r[i]) for r in rows)) if rows else len(h)
        for i, h in enumerate(header)
    ]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for r in rows:
        print("  ".join(c.replace("\n", "\\n").ljust(w) for c, w in zip(r, widths)))


# ---------------------------------------------------------------------------------- logs


async def _analyze_logs(args: argparse.Namespace) -> int:
    from aiops.logs import analyze
    from aiops.timeutil import parse_unix_seconds

    settings = _settings()
    if (args.file is None) == (args.selector is None):
        raise AiopsError("give a FILE or --selector (one of them)")
    if args.file is not None:
        from aiops.sources.files import LogAccess

        # the same confinement as the service: AIOPS_LOG_ROOTS (or the data dir's logs/) and
        # the log jobs' files; regular files only, bounded in size and time
        loaded = LogAccess.from_settings(settings).read(args.file)
        if loaded.truncated:
            print(f"warning: {loaded.reason}", file=sys.stderr)
        frame = loaded.frame
        selector = None
    else:
        import httpx

        from aiops.sources import build_loki

        config = settings.datasource_configs().get(args.datasource)
        if config is None or config.type != "loki":
            raise ConfigError(
                f"no Loki datasource named {args.datasource!r}: set AIOPS_LOKI_URL or add it to "
                "the config file",
                setting="AIOPS_LOKI_URL",
            )
        now = time.time()
        start = parse_unix_seconds(f"now-{args.since}", field="--since", now=now)
        async with httpx.AsyncClient() as http:
            result = await build_loki(config, settings, http).logs(
                args.selector, start, now, max_entries=args.max_lines
            )
        if result.truncated:
            print(f"warning: {result.reason}", file=sys.stderr)
        frame, selector = result.frame, args.selector
    report = analyze(
        frame, bucket=args.bucket, selector=selector, log_format=args.log_format
    ).to_dict()
    if args.json:
        print(json.dumps(report, ensure_ascii=False, default=str))
    else:
        _print_report(report, args.top)
    return 0


def _print_report(report: dict[str, Any], top: int) -> None:
    joined = int((report.get("header") or {}).get("joined_lines") or 0)
    unit = f"events ({report['total_logs'] + joined} lines)" if joined else "lines"
    print(
        f"{report['total_logs']} {unit}, {report['error_count']} errors "
        f"({report['error_rate']:.2%}), {report['anomaly_count']} anomalies "
        f"({report['anomaly_rate']:.2%})"
    )
    for title, mapping in (
        ("levels", report.get("levels") or {}),
        ("anomaly patterns", report["pattern_counts"]),
        ("error types", report["error_types"]),
        ("error categories", report["error_categories"]),
    ):
        items = sorted(((k, v) for k, v in mapping.items() if v), key=lambda kv: -kv[1])[:top]
        if items:
            print(f"\n{title}:")
            _print_table(["name", "count"], [[k, str(v)] for k, v in items])
    if report["templates"]:
        print("\ntop templates:")
        _print_table(
            ["id", "count", "template"],
            [
                [t["template_id"], str(t["count"]), t["template"][:100]]
                for t in report["templates"][:top]
            ],
        )
    durations = (report.get("performance") or {}).get("duration_ms") or {}
    if durations.get("count"):
        print(
            f"\ndurations: n={durations['count']} p50={durations.get('p50')}ms "
            f"p95={durations.get('p95')}ms p99={durations.get('p99')}ms "
            f"max={durations.get('max')}ms"
        )


# ---------------------------------------------------------------------------------- tail


def _tail_logs(args: argparse.Namespace) -> int:
    """Analyse a Loki selector or a growing file live, one report per short window, until
    Ctrl-C or SIGTERM (which report the window so far and stop cleanly)."""
    import signal

    from aiops.live import LiveLogAnalysis, run_live
    from aiops.sources.tail import FileTail, LokiTail
    from aiops.timeutil import parse_seconds

    settings = _settings()
    if (args.file is None) == (args.selector is None):
        raise AiopsError("give a FILE or --selector (one of them)")
    window = parse_seconds(args.window, field="--window")
    patterns = None
    if args.job:
        job = next((j for j in settings.log_jobs if j.name == args.job), None)
        if job is None:
            names = ", ".join(j.name for j in settings.log_jobs) or "none"
            raise ConfigError(
                f"no log job named {args.job!r} (configured: {names})", setting="log_jobs"
            )
        patterns = job.patterns
    if args.file is not None:
        from aiops.sources.files import LogAccess

        path = LogAccess.from_settings(settings).check(args.file)  # the service's confinement
        tail = FileTail(path, from_start=args.from_start)
        source = tail.batches(poll_seconds=min(1.0, window / 10), labels={"file": str(args.file)})
        what = str(args.file)
    else:
        from aiops.sources import retry_policy, tls_context

        config = settings.datasource_configs().get(args.datasource)
        if config is None or config.type != "loki":
            raise ConfigError(
                f"no Loki datasource named {args.datasource!r}: set AIOPS_LOKI_URL or add it to "
                "the config file",
                setting="AIOPS_LOKI_URL",
            )
        since = parse_seconds(args.since, field="--since", allow_zero=True)
        loki = LokiTail(
            list(config.urls),
            args.selector,
            name=config.name,
            tenant=config.tenant,
            headers=dict(config.headers),
            start_ns=time.time_ns() - int(since * 1e9),
            delay_for=args.delay_for,
            retry=retry_policy(settings),
            open_timeout=settings.connect_timeout_seconds,
            ssl=tls_context(),
        )
        source = loki.batches()
        what = f"{config.name}: {args.selector}"
    analysis = LiveLogAnalysis(
        window, patterns=patterns, selector=args.selector, top_templates=args.top
    )

    def emit(w: Any) -> None:
        if args.json:
            print(json.dumps(w.to_dict(), ensure_ascii=False, default=str), flush=True)
            return
        r = w.report.to_dict()
        changes = r.get("changes") or []
        kinds: dict[str, int] = {}
        for c in changes:
            kinds[c["type"]] = kinds.get(c["type"], 0) + 1
        print(
            f"{w.start:%H:%M:%S}-{w.end:%H:%M:%S}{' (partial)' if w.partial else ''}  {w.lines} "
            f"lines, {r['error_count']} errors, {r['anomaly_count']} anomalies"
            + (f", dropped {w.dropped}" if w.dropped else "")
            + (
                "; "
                + ", ".join(
                    f"{n} {k.removeprefix('log.').replace('_', ' ')}" for k, n in kinds.items()
                )
                if kinds
                else ""
            ),
            flush=True,
        )
        for c in changes[: args.top]:
            detail = c.get("template") or c.get("error_type") or c.get("name") or ""
            print(f"  {c['type']}: {str(detail)[:120]}", flush=True)
        for note in w.notes:
            print(f"  note: {note}", flush=True)

    async def main_loop() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(
            f"aiops: tailing {what} in windows of {window:g}s; Ctrl-C stops",
            file=sys.stderr,
            flush=True,
        )
        try:
            return await run_live(source, analysis, emit, stop=stop, max_windows=args.max_windows)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    windows = asyncio.run(main_loop())
    print(f"aiops: stopped after {windows} windows", file=sys.stderr, flush=True)
    return 0


# ---------------------------------------------------------------------------------- backfill


def _backfill(args: argparse.Namespace) -> int:
    """Run the backfill flow from this process, with a progress bar on stderr."""
    import os

    from aiops.backfill import CLI_FIELDS, ProgressWatcher, check_dask_scheduler, resolve_backfill
    from aiops.store import Store
    from aiops.supervisor import use_local_prefect
    from aiops.timeutil import datetime_from_seconds, parse_unix_seconds

    settings = _settings()
    # relative times ("now", "now-30d") are cut to the minute, so the same command run again
    # within a minute names the same backfill; the resume hint gives the exact times
    now = math.floor(time.time() / 60) * 60
    start = datetime_from_seconds(
        parse_unix_seconds(args.start, field="--start", now=now), field="--start"
    )
    end = datetime_from_seconds(parse_unix_seconds(args.end, field="--end", now=now), field="--end")
    again = f"aiops backfill ... --start {start:%Y-%m-%dT%H:%M:%SZ} --end {end:%Y-%m-%dT%H:%M:%SZ}"
    url = settings.resolved_database_url()
    with contextlib.ExitStack() as opened:  # the store is opened only for detectors to look up
        stores: list[Store] = []

        def get_detector(det_id: str) -> Any:
            if not stores:
                stores.append(opened.enter_context(Store.open(url)))
            return stores[0].get_detector(det_id)

        # refuse what the flow would refuse, before starting Prefect
        resolved = resolve_backfill(
            detector_ids=args.detector,
            log_jobs=args.log_job,
            start=start,
            end=end,
            window=args.window,
            train=args.train,
            log_window=args.log_window,
            backfill_id=args.id,
            settings=settings,
            get_detector=get_detector,
            fields=CLI_FIELDS,
        )
    bf_id, request = resolved.backfill_id, resolved.request
    if settings.dask_address and resolved.detectors:
        check_dask_scheduler(settings.dask_address)
    if not args.verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    use_local_prefect(settings)
    from flows.backfill import backfill

    print(
        f"aiops: backfill {bf_id}: {request.start:%Y-%m-%d %H:%M} .. {request.end:%Y-%m-%d %H:%M} "
        "UTC",
        file=sys.stderr,
    )
    tty = sys.stderr.isatty()

    def show(text: str, final: bool) -> None:
        print(
            ("\r" if tty else "") + "aiops: " + text,
            end="\n" if final or not tty else "",
            file=sys.stderr,
            flush=True,
        )

    watcher = ProgressWatcher(lambda: Store.open(url), resolved, show, interval=0.5 if tty else 5.0)
    try:
        with watcher if not args.json else contextlib.nullcontext():
            result = asyncio.run(
                backfill(
                    detector_ids=list(request.detector_ids),
                    start=request.start,
                    end=request.end,
                    window=args.window,
                    backfill_id=bf_id,
                    max_windows=args.max_windows,
                    train=args.train,
                    log_jobs=list(request.log_jobs),
                    log_window=args.log_window,
                    emit_events=args.emit_events,
                )
            )
    except KeyboardInterrupt:
        print(f"\naiops: interrupted; resume backfill {bf_id} with: {again}", file=sys.stderr)
        return 130
    failed = [r for r in [*result["detectors"], *result["logs"]] if r["error"]]
    if args.json:
        print(json.dumps(result, default=str))
        return 1 if failed else 0
    if result["detectors"]:
        _print_table(
            [
                "detector",
                "windows",
                "samples",
                "incidents opened",
                "resolved",
                "anomalies",
                "error",
            ],
            [
                [
                    r["detector"],
                    str(r["windows"]),
                    str(r["samples"]),
                    str(r.get("incidents_opened", 0)),
                    str(r.get("incidents_resolved", 0)),
                    str(r["anomalies"]),
                    r["error"] or "",
                ]
                for r in result["detectors"]
            ],
        )
    if result["logs"]:
        _print_table(
            ["log job", "windows", "lines", "events", "error"],
            [
                [r["job"], str(r["windows"]), str(r["lines"]), str(r["events"]), r["error"] or ""]
                for r in result["logs"]
            ],
        )
    p = result["progress"]
    print(
        f"backfill {bf_id}: {p['done']}/{p['total']} windows done, incidents: "
        f"{result.get('incidents_opened', 0)} opened, {result.get('incidents_resolved', 0)} "
        f"resolved ({result['anomalies']} new anomalous points)"
        + (
            f"; {p['pending'] + p['failed'] + p['running']} left: resume with {again}"
            if p["done"] < p["total"]
            else ""
        )
    )
    print(f"incidents: GET /api/incidents?source=backfill&backfill_id={bf_id}")
    print(f"anomalies: GET /api/anomalies?source=backfill&backfill_id={bf_id}")
    for warning in result.get("warnings", []):
        print(f"warning: {warning}")
    return 1 if failed else 0


# ---------------------------------------------------------------------------------- run


def _serve(args: argparse.Namespace) -> int:
    """Serve the deployments from this process (blocks)."""
    _settings()  # before Prefect is imported: it sets up its logging then
    from deployments.serve import main as serve_main

    return serve_main()


def _api(args: argparse.Namespace) -> int:
    from aiops.api.server import run_api

    settings = _settings()
    run_api(settings, host=args.host, port=args.port)
    return 0


def _up(args: argparse.Namespace) -> int:
    """Everything on the embedded defaults: a local Prefect server on SQLite (unless
    PREFECT_API_URL points at one), the deployments served, and the API; when no Prometheus
    is configured (or with --demo), the demo too: a workload exporter and log file, and a
    local Prometheus scraping it and the API (docs/demo.md). Ctrl-C or SIGTERM stops it all."""
    from pathlib import Path

    import deployments
    from aiops.demo.stack import DemoOptions, prometheus_configured
    from aiops.timeutil import parse_seconds
    from aiops.up import UpPlan, run_up

    settings = _settings()
    demo = args.demo if args.demo is not None else not prometheus_configured(settings)
    options = None
    if demo:
        options = DemoOptions(
            config_dir=Path(deployments.__file__).resolve().parent / "demo",
            prometheus_port=args.prometheus_port,
            exporter_port=args.exporter_port,
            history_seconds=parse_seconds(args.demo_history, field="--demo-history"),
            incident_every=parse_seconds(args.incident_every, field="--incident-every"),
            incident_duration=parse_seconds(args.incident_duration, field="--incident-duration"),
        )

    def ready(prefect_api: str, api: str | None, where: dict[str, str]) -> None:
        _print_where(prefect_api, api, settings, where, demo)

    def notice(text: str) -> None:
        print(f"aiops: {text}", file=sys.stderr)

    return run_up(settings, UpPlan(api=args.api, demo=options), on_ready=ready, notice=notice)


def _print_where(
    prefect_api: str, api: str | None, settings: Any, where: dict[str, str], demo: bool
) -> None:
    rows = [("Prefect UI", prefect_api.removesuffix("/api"))]
    if api:
        ws = "ws" + api.removeprefix("http")
        rows += [
            ("web page", f"{api}/"),
            ("API", api),
            ("API docs", f"{api}/docs"),
            ("WebSocket", f"{ws}/api/events/ws"),
            ("anomalies", f"{api}/api/anomalies"),
            ("metrics", f"{api}/metrics"),
        ]
    rows += list(where.items())
    rows.append(("data dir", str(settings.data_dir.resolve())))
    mode = (
        " (demo: no Prometheus configured)"
        if demo and "prometheus_url" not in settings.model_fields_set
        else (" (with the demo)" if demo else "")
    )
    width = max(len(name) for name, _ in rows)
    lines = [
        f"aiops is up{mode}",
        *(f"  {name.ljust(width)}  {value}" for name, value in rows),
        "Ctrl-C stops everything.",
    ]
    print("\n".join(lines), flush=True)


# ---------------------------------------------------------------------------------- detectors


def _detector_row(det: Any) -> list[str]:
    ds = det.datasource
    return [
        det.id,
        det.kind,
        det.status,
        f"{det.interval_seconds}s",
        f"{ds.name}: {ds.query}" if ds else "(no datasource)",
    ]


def _detectors_apply(args: argparse.Namespace) -> int:
    """Upsert a detectors file into the store now (what `aiops up`/`serve` do at start)."""
    from aiops.promql import detector_sampling_notes
    from aiops.store import Store, apply_detectors_file

    settings = _settings()
    path = args.file or settings.detectors_file
    if not path:
        raise ConfigError(
            "give a detectors FILE or set AIOPS_DETECTORS_FILE", setting="AIOPS_DETECTORS_FILE"
        )
    url = settings.resolved_database_url()
    if url.startswith("sqlite:///"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    configs = settings.datasource_configs()
    with Store.open(url) as db:
        # with the datasource types, a Loki log query (not a metric query) is refused here
        result = apply_detectors_file(db, path, datasources=configs)
        notes = {
            d.id: detector_sampling_notes(d, configs)
            for d in db.list_detectors()
            if d.id in {*result["created"], *result["updated"], *result["unchanged"]}
        }
    if args.json:
        print(
            json.dumps(
                {"file": str(path), **result, "warnings": {k: v for k, v in notes.items() if v}}
            )
        )
        return 0
    rows = [
        [det_id, what] for what in ("created", "updated", "unchanged") for det_id in result[what]
    ]
    for row in rows:
        if row[0] in result["reset"]:
            row[1] += " (new model: learned state dropped)"
    _print_table(["detector", "change"], rows)
    print(
        f"{path}: {len(result['created'])} created, {len(result['updated'])} updated, "
        f"{len(result['unchanged'])} unchanged"
    )
    for det_id, det_notes in notes.items():
        for note in det_notes:
            print(f"warning: detector {det_id}: {note}", file=sys.stderr)
    return 0


def _detectors_list(args: argparse.Namespace) -> int:
    from aiops.store import Store

    settings = _settings()
    with Store.open(settings.resolved_database_url()) as db:
        items = db.list_detectors(status=args.status)
    if args.json:
        print(json.dumps({"detectors": [d.model_dump(mode="json") for d in items]}))
    elif not items:
        print("(no detectors: load a detectors file with `aiops detectors apply FILE`)")
    else:
        _print_table(
            ["id", "kind", "status", "interval", "query"], [_detector_row(d) for d in items]
        )
    return 0


def _detectors_show(args: argparse.Namespace) -> int:
    from aiops.store import Store

    settings = _settings()
    with Store.open(settings.resolved_database_url()) as db:
        det = db.get_detector(args.id)
        status = db.collector_status(det.id)
        states = db.state_info(det.id)
    out = det.model_dump(mode="json")
    out["series"] = len(states)
    out["collector"] = status.model_dump(mode="json")
    if args.json:
        print(json.dumps(out))
        return 0
    ds = det.datasource
    rows = [
        ("id", det.id),
        ("name", det.name),
        ("kind", det.kind),
        ("params", json.dumps(det.params)),
        ("status", det.status),
        ("threshold", f"{det.threshold:g}"),
        ("resolve_after", str(det.resolve_after)),
        ("interval", f"{det.interval_seconds}s"),
        (
            "training window",
            "-" if det.training_window_seconds is None else f"{det.training_window_seconds}s",
        ),
        ("datasource", ds.name if ds else "-"),
        ("query", ds.query if ds else "-"),
        ("step", f"{ds.step_seconds:g}s" if ds else "-"),
        ("series with a model", str(len(states))),
        ("updated", det.updated_at.isoformat()),
    ]
    rows += [
        ("last run", str(out["collector"].get("last_run_at") or "never")),
        ("last error", str(out["collector"].get("last_error") or "-")),
    ]
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k.ljust(width)}  {v}" for k, v in rows))
    return 0


def _not_found_hint(exc: NotFound) -> str:
    """Why a detector may be missing: a detectors file is only read by `aiops up`/`serve`."""
    det_id = exc.detail.get("detector")
    if not isinstance(det_id, str):
        return ""
    try:
        from aiops.config import load_settings
        from aiops.store import load_detectors_file

        path = load_settings().detectors_file
        if path and any(spec.id == det_id for spec in load_detectors_file(path)):
            return (
                f"; it is in the detectors file {path}, which only `aiops up`/`serve` load at "
                f"start: load it now with `aiops detectors apply {path}`"
            )
    except AiopsError:
        pass
    return (
        "; `aiops detectors list` shows the stored ones, `aiops detectors apply FILE` loads a "
        "detectors file"
    )


# ---------------------------------------------------------------------------------- evaluate


def _evaluate(args: argparse.Namespace) -> int:
    """Score detectors' stored anomalies against labelled windows (docs/evaluation.md)."""
    from aiops.detector_quality import evaluate_detectors
    from aiops.evaluation import SeriesQuality, load_labels
    from aiops.store import Store
    from aiops.timeutil import parse_seconds, parse_unix_seconds

    settings = _settings()
    labels = load_labels(args.labels)
    now = time.time()
    start = parse_unix_seconds(args.start, field="--start", now=now) if args.start else None
    end = parse_unix_seconds(args.end, field="--end", now=now) if args.end else None
    if start is not None and end is not None and end <= start:
        raise AiopsError("--end must be after --start")
    tolerance = parse_seconds(args.tolerance, field="--tolerance", allow_zero=True)
    gap_arg = parse_seconds(args.gap, field="--gap", allow_zero=True) if args.gap else None
    with Store.open(settings.resolved_database_url()) as db:
        scored = evaluate_detectors(
            db,
            args.detector,
            labels,
            tolerance=tolerance,
            gap=gap_arg,
            start=start,
            end=end,
            source=args.source,
            backfill_id=args.backfill,
            resolve_after=args.resolve_after,
            probation=args.probation,
        )
    results = [
        (q.detector, q.step, q.gap, q.detections, q.result, q.nab, q.left_out) for q in scored
    ]

    def as_dict(det: Any, result: Any, nab: Any, left_out: list) -> dict[str, Any]:
        return {
            "detector": det.id,
            "kind": det.kind,
            "labels": str(args.labels),
            **result.to_dict(),
            "nab": nab.to_dict(),
            "other_series": [dict(s.labels) for s in left_out],
        }

    overall = SeriesQuality(labels=None)
    for *_, result, _nab, _left in results:
        overall.add(result.overall)
    if args.json:
        if len(results) == 1:
            det, _, _, _, result, nab, left_out = results[0]
            print(json.dumps(as_dict(det, result, nab, left_out)))
        else:
            print(
                json.dumps(
                    {
                        "labels": str(args.labels),
                        "overall": overall.to_dict(),
                        "detectors": [as_dict(d, r, n, lo) for d, _, _, _, r, n, lo in results],
                    }
                )
            )
        return 0

    def num(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    def ttd(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.0f}s"

    def figures(q: Any) -> list[str]:
        return [
            str(q.windows),
            str(q.detected_windows),
            num(q.recall),
            str(q.events),
            str(q.false_events),
            num(q.precision),
            num(q.f1),
            ttd(q.mean_ttd_seconds),
        ]

    several = len(results) > 1
    rows = []
    for det, _, _, _, result, _, _ in results:
        for q in [*result.series, result.overall]:
            name = (
                "overall"
                if q.labels is None
                else ("{" + ",".join(f'{k}="{v}"' for k, v in q.labels.items()) + "}")
            )
            if q.labels is not None and not q.labelled:
                name += " (unlabelled)"
            rows.append(([det.id] if several else []) + [name, *figures(q)])
    if several:
        rows.append(["all", "overall", *figures(overall)])
    _print_table(
        (["detector"] if several else [])
        + [
            "series",
            "windows",
            "found",
            "recall",
            "events",
            "FP events",
            "precision",
            "F1",
            "mean TTD",
        ],
        rows,
    )
    span = f"{args.start or 'all'} .. {args.end or 'all'}"
    for det, _, gap, detections, _, _, left_out in results:
        print(
            f"detector {det.id} ({det.kind}), {len(detections)} detections in {span}; "
            f"tolerance {tolerance:g}s, events merge detections <= {gap:g}s apart"
        )
        if left_out:
            print(
                f"  {len(left_out)} labelled series not watched by {det.id}, not counted: "
                + ", ".join("{" + s.key + "}" for s in left_out[:5])
                + (" ..." if len(left_out) > 5 else "")
            )
    for det, step, _, _, _, nab, _ in results:
        print()
        nab_rows = [
            [
                name,
                "n/a" if p.normalized is None else f"{p.normalized:.1f}",
                f"{p.raw:.3f}",
                f"{p.detected_windows}/{p.windows}",
                str(p.detections),
                str(p.false_detections),
            ]
            for name, p in nab.profiles.items()
        ]
        _print_table(
            [
                f"NAB profile ({det.id})" if several else "NAB profile",
                "score",
                "raw",
                "found",
                "incidents",
                "false",
            ],
            nab_rows,
        )
        skipped = f", the first {nab.probation:.0%} not scored" if nab.probation else ""
        print(
            "NAB score (0 = never fires, 100 = perfect): incident onsets as detections "
            f"(resolve_after {nab.resolve_after}), on {nab.rows} steps of {step:g}s{skipped}"
        )
    return 0


# ---------------------------------------------------------------------------------- main


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aiops", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    q = sub.add_parser("query", help="run a PromQL query (instant, or range with --start)")
    q.add_argument("query", help="PromQL expression")
    q.add_argument("--start", help="range start: RFC 3339, Unix seconds, 'now-1h' or '-1h'")
    q.add_argument("--end", help="range end (default now)")
    q.add_argument("--step", help="range step, e.g. 15s, 1m (default: about 250 points)")
    q.add_argument("--time", help="evaluation time of an instant query (default now)")
    q.add_argument("--datasource", default="prometheus", help="configured datasource name")
    q.add_argument("--json", action="store_true", help="print JSON for scripts")
    q.add_argument("--limit", type=int, default=50, help="rows shown in the table (default 50)")
    q.set_defaults(handler=lambda a: asyncio.run(_run_query(a)))

    lg = sub.add_parser("analyze-logs", help="analyse a log file or a Loki selector's recent lines")
    lg.add_argument(
        "file", nargs="?", help="a local log file (plain or gzip; text, JSON lines, logfmt)"
    )
    lg.add_argument("--selector", help='a LogQL stream selector, e.g. {app="api"}')
    lg.add_argument(
        "--since", default="1h", help="how far back from now to read from Loki (default 1h)"
    )
    lg.add_argument("--datasource", default="loki", help="configured Loki datasource name")
    lg.add_argument("--bucket", default="1h", help="time distribution bucket (default 1h)")
    lg.add_argument("--max-lines", type=int, default=1_000_000, help="cap on lines read from Loki")
    lg.add_argument("--top", type=int, default=10, help="rows per table (default 10)")
    lg.add_argument(
        "--log-format",
        help="header format when learning it is not enough, e.g. "
        "'%%{timestamp} %%{level} [%%{thread}] %%{component}: %%{message}' or a regex with a "
        "named 'message' group (default: learned from the lines)",
    )
    lg.add_argument("--json", action="store_true", help="print the whole report as JSON")
    lg.set_defaults(handler=lambda a: asyncio.run(_analyze_logs(a)))

    tl = sub.add_parser(
        "tail-logs", help="analyse a Loki selector or a growing file live, in short windows"
    )
    tl.add_argument(
        "file", nargs="?", help="a growing log file (followed across rotation and truncation)"
    )
    tl.add_argument("--selector", help='a LogQL log query tailed from Loki, e.g. {app="api"}')
    tl.add_argument("--datasource", default="loki", help="configured Loki datasource name")
    tl.add_argument(
        "--window", default="1m", help="report every window of this length (default 1m)"
    )
    tl.add_argument(
        "--since", default="0s", help="Loki: start this far back (default: new lines only)"
    )
    tl.add_argument(
        "--delay-for", type=int, default=0, help="Loki: seconds to wait for late lines (0-5)"
    )
    tl.add_argument(
        "--from-start",
        action="store_true",
        help="file: read what is there first (default: new lines only)",
    )
    tl.add_argument("--job", metavar="NAME", help="use this configured log job's anomaly patterns")
    tl.add_argument("--max-windows", type=int, help="stop after this many windows")
    tl.add_argument("--top", type=int, default=5, help="changes listed per window (default 5)")
    tl.add_argument("--json", action="store_true", help="one JSON object per window")
    tl.set_defaults(handler=_tail_logs)

    bf = sub.add_parser(
        "backfill", help="run detectors (and log jobs) over a past range, resumably"
    )
    bf.add_argument(
        "--detector", action="append", default=[], metavar="ID", help="detector id (repeatable)"
    )
    bf.add_argument(
        "--log-job",
        action="append",
        default=[],
        metavar="NAME",
        help="configured log job (repeatable)",
    )
    bf.add_argument(
        "--start", required=True, help="range start: RFC 3339, Unix seconds or 'now-30d'"
    )
    bf.add_argument("--end", default="now", help="range end (default now)")
    bf.add_argument("--window", default="1d", help="detector window size (default 1d)")
    bf.add_argument(
        "--train",
        help="fit on this first part of the range without scoring it: a duration (2d), a "
        "fraction of the range (0.2 or 20%%) or a number of points (500 points); one rule for "
        "every detector",
    )
    bf.add_argument(
        "--log-window", default="1h", help="log window size: one report each (default 1h)"
    )
    bf.add_argument(
        "--id", help="backfill id (default: derived from the request, so a rerun resumes)"
    )
    bf.add_argument("--max-windows", type=int, help="process at most this many windows in this run")
    bf.add_argument(
        "--emit-events",
        action="store_true",
        help="also send Prefect events for the incidents found",
    )
    bf.add_argument(
        "--json", action="store_true", help="print the result as JSON (no progress bar)"
    )
    bf.add_argument("--verbose", action="store_true", help="show Prefect's run logs")
    bf.set_defaults(handler=_backfill)

    sv = sub.add_parser("serve", help="serve the Prefect deployments from this process")
    sv.set_defaults(handler=_serve)

    a = sub.add_parser("api", help="run the HTTP API alone")
    a.add_argument("--host", default=None, help="listen address (default AIOPS_API_HOST)")
    a.add_argument("--port", type=int, default=None, help="listen port (default AIOPS_API_PORT)")
    a.set_defaults(handler=_api)

    u = sub.add_parser(
        "up", help="run everything: local Prefect server, deployments, API (and the demo)"
    )
    u.add_argument("--no-api", dest="api", action="store_false", help="do not start the API")
    u.add_argument(
        "--demo",
        dest="demo",
        action="store_true",
        default=None,
        help="run the demo workload and its Prometheus (default: when no Prometheus is configured)",
    )
    u.add_argument("--no-demo", dest="demo", action="store_false", help="never run the demo")
    u.add_argument(
        "--prometheus-port", type=int, help="port of the demo's Prometheus (default 9190)"
    )
    u.add_argument(
        "--exporter-port", type=int, help="port of the demo workload exporter (default 9191)"
    )
    u.add_argument(
        "--demo-history",
        default="4d",
        help="workload history loaded into the demo's Prometheus (default 4d)",
    )
    u.add_argument(
        "--incident-every",
        default="15m",
        help="one injected incident per this period (default 15m)",
    )
    u.add_argument("--incident-duration", default="4m", help="typical incident length (default 4m)")
    u.set_defaults(handler=_up)

    ev = sub.add_parser(
        "evaluate", help="score detectors' stored anomalies against labelled windows"
    )
    ev.add_argument(
        "--detector",
        required=True,
        action="append",
        metavar="ID",
        help="detector id (repeatable: each is scored on the labelled series it watches)",
    )
    ev.add_argument(
        "--labels",
        required=True,
        help="labelled windows: a .json or .csv file (docs/evaluation.md)",
    )
    ev.add_argument(
        "--start", help="only detections and windows from here: RFC 3339, Unix seconds or now-7d"
    )
    ev.add_argument("--end", help="... up to here (exclusive)")
    ev.add_argument(
        "--tolerance",
        default="0",
        help="a detection this long after a window's end still finds it (e.g. 5m)",
    )
    ev.add_argument(
        "--gap", help="detections at most this far apart are one event (default 5 steps)"
    )
    ev.add_argument(
        "--source",
        choices=("all", "live", "backfill"),
        default="all",
        help="score live anomalies, backfilled ones, or all (default)",
    )
    ev.add_argument("--backfill", metavar="ID", help="score only the anomalies of this backfill")
    ev.add_argument(
        "--resolve-after",
        type=int,
        metavar="STEPS",
        help="normal steps allowed inside one incident for the NAB score (default: the detector's)",
    )
    ev.add_argument(
        "--probation",
        type=float,
        default=0.0,
        help="NAB score: leave this first fraction of the range unscored (default 0; NAB uses "
        "0.15)",
    )
    ev.add_argument("--json", action="store_true", help="print JSON for scripts")
    ev.set_defaults(handler=_evaluate)

    dt = sub.add_parser("detectors", help="list, show, or load detectors from a detectors file")
    dsub = dt.add_subparsers(dest="detectors_command", required=True)
    da = dsub.add_parser(
        "apply", help="upsert a detectors file into the store now (kept models stay)"
    )
    da.add_argument("file", nargs="?", help="detectors YAML file (default AIOPS_DETECTORS_FILE)")
    da.add_argument("--json", action="store_true", help="print JSON for scripts")
    da.set_defaults(handler=_detectors_apply)
    dl = dsub.add_parser("list", help="the stored detectors")
    dl.add_argument(
        "--status", choices=("training", "running", "paused"), help="only detectors in this status"
    )
    dl.add_argument("--json", action="store_true", help="print JSON for scripts")
    dl.set_defaults(handler=_detectors_list)
    dsh = dsub.add_parser("show", help="one stored detector, its datasource and collector status")
    dsh.add_argument("id", help="detector id")
    dsh.add_argument("--json", action="store_true", help="print JSON for scripts")
    dsh.set_defaults(handler=_detectors_show)

    c = sub.add_parser("config", help="print the effective configuration (secrets hidden)")
    c.set_defaults(handler=_show_config)
    return parser


def _show_config(args: argparse.Namespace) -> int:
    settings = _settings()
    data = settings.model_dump(mode="json")
    data["datasources"] = {
        n: c.model_dump(mode="json") for n, c in settings.datasource_configs().items()
    }
    data["database_url"] = settings.resolved_database_url()
    print(json.dumps(data, indent=2))
    return 0


_NEGATIVE_TIME = re.compile(r"^-(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w|y))+$")


def _value_options(parser: argparse.ArgumentParser) -> set[str]:
    """Every ``--option`` of the parser and its subcommands that takes a value."""
    out: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                out |= _value_options(sub)
        elif action.option_strings and action.nargs != 0:
            out.update(action.option_strings)
    return out


def _join_negative_times(argv: Sequence[str], value_options: set[str]) -> list[str]:
    """``--start -1h`` becomes ``--start=-1h``: argparse would take ``-1h`` for an option."""
    out: list[str] = []
    for token in argv:
        if out and out[-1] in value_options and _NEGATIVE_TIME.match(token):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(_join_negative_times(argv, _value_options(parser)))
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args) or 0
    except ConfigError as exc:
        print(f"aiops: configuration error: {exc.message}", file=sys.stderr)
        return 2
    except NotFound as exc:
        print(f"aiops: {exc.message}{_not_found_hint(exc)}", file=sys.stderr)
        return 2
    except DatasourceError as exc:
        where = f" [{exc.datasource} {exc.url}]" if exc.url else ""
        print(f"aiops: {exc.message}{where}", file=sys.stderr)
        return 1
    except AiopsError as exc:
        print(f"aiops: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
