"""The `lineage` command line: a thin shell over library calls.

Every module in `jobs/commands/` contributes its subcommands through
`register(subparsers)`; each subcommand sets `func(args) -> int` as its handler.
Errors from lineage are printed as one clear line, not a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

import jobs.commands
from lineage.errors import LineageError

DEFAULT_CATALOG = "./lineage-catalog"


def add_catalog_option(parser: argparse.ArgumentParser) -> None:
    """`--catalog DIR`, defaulting to $LINEAGE_CATALOG, else ./lineage-catalog."""
    parser.add_argument(
        "--catalog",
        default=os.environ.get("LINEAGE_CATALOG", DEFAULT_CATALOG),
        help="catalog directory (default: $LINEAGE_CATALOG or ./lineage-catalog)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lineage", description="Recover the heredity of neural networks from weights."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(jobs.commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"jobs.commands.{info.name}")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except LineageError as err:
        print(f"lineage: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
