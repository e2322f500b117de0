"""Developer entry point: ``python -m aiops.store.migrations --url URL <alembic command>``."""

from __future__ import annotations

import argparse
import sys

from alembic.config import CommandLine

from aiops.store.migrations import alembic_config


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m aiops.store.migrations")
    parser.add_argument("--url", required=True, help="database URL, e.g. sqlite:///dev.db")
    args, rest = parser.parse_known_args(argv)
    cli = CommandLine(prog=parser.prog)
    options = cli.parser.parse_args(rest)
    if not hasattr(options, "cmd"):
        cli.parser.error("too few arguments")
    cli.run_cmd(alembic_config(url=args.url), options)


if __name__ == "__main__":
    main(sys.argv[1:])
