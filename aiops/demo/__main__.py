r"""``python -m aiops.demo``: the demo workload process, and its incident schedule.

python -m aiops.demo serve --state .aiops/demo/workload.json --port 9191 \
    --log-file .aiops/logs/demo-app.log
python -m aiops.demo incidents --state .aiops/demo/workload.json --since 2h --until 1h
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from aiops.errors import AiopsError


def _state(path: str):
    from aiops.demo.stack import DemoState

    state = DemoState.load(Path(path))
    if state is None:
        raise AiopsError(f"no demo state at {path}: `aiops up` creates it")
    return state


def _serve(args: argparse.Namespace) -> int:
    from aiops.demo.exporter import run_workload

    state_file = Path(args.state)
    state = _state(args.state)
    beat = {"at": 0.0}

    def heartbeat(now: float) -> None:
        # Up to when Prometheus has (or will have scraped) live values: the next start only
        # loads the gap after it.
        if now - beat["at"] >= 30:
            beat["at"] = now
            current = _state(args.state)
            current.served_until = now
            current.save(state_file)

    return run_workload(
        state.workload(),
        host=args.host,
        port=args.port,
        log_file=Path(args.log_file) if args.log_file else None,
        log_keep=args.log_keep,
        on_tick=heartbeat,
    )


def _incidents(args: argparse.Namespace) -> int:
    from aiops.timeutil import parse_seconds

    workload = _state(args.state).workload()
    now = time.time()
    start = now - parse_seconds(args.since, field="--since")
    end = now + parse_seconds(args.until, field="--until")
    for inc in workload.incidents(start, end):
        when = "now" if inc.start <= now < inc.end else ("past" if inc.end <= now else "next")
        print(
            f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(inc.start))}  "
            f"{inc.end - inc.start:4.0f}s  {inc.kind:<14} {inc.target:<9} {when}"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    from aiops.logsetup import configure_logging

    parser = argparse.ArgumentParser(
        prog="python -m aiops.demo", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve the demo metrics and write the demo log file")
    s.add_argument("--state", required=True, help="the demo state file (workload.json)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--log-file", help="append the workload's log lines here")
    s.add_argument(
        "--log-keep", type=float, default=600.0, help="seconds of lines kept in the log file"
    )
    s.set_defaults(handler=_serve)
    i = sub.add_parser("incidents", help="print the incident schedule around now")
    i.add_argument("--state", required=True)
    i.add_argument("--since", default="2h")
    i.add_argument("--until", default="1h")
    i.set_defaults(handler=_incidents)
    args = parser.parse_args(argv)
    configure_logging("INFO", "text")
    try:
        return args.handler(args)
    except AiopsError as exc:
        print(f"aiops demo: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
