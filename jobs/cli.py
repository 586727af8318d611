"""The `lineage` command line: a thin shell over library calls.

Every module in `jobs/commands/` contributes its subcommands through
`register(subparsers)`; each subcommand sets `func(args) -> int` as its handler.
Errors are one clear line and exit 1, argument errors included (jobs.entry).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
from pathlib import Path

import jobs.commands
from jobs.entry import Parser, run_entry

DEFAULT_CATALOG = "./lineage-catalog"


def add_catalog_option(parser: argparse.ArgumentParser) -> None:
    """`--catalog DIR`, defaulting to $LINEAGE_CATALOG, else ./lineage-catalog."""
    parser.add_argument(
        "--catalog",
        default=os.environ.get("LINEAGE_CATALOG", DEFAULT_CATALOG),
        help="catalog directory (default: $LINEAGE_CATALOG or ./lineage-catalog)",
    )


def existing_catalog(path: str | os.PathLike):
    """The catalog at `path` when there is one, else None (commands that also take plain
    paths resolve catalog ids through it, and never create one as a side effect)."""
    from catalog import Catalog

    return Catalog(path, create=False) if (Path(path) / "catalog.duckdb").exists() else None


def catalog_for(path: str | os.PathLike, models: list[str], create: bool):
    """The catalog a command that takes models (and may register results) works with.

    An existing catalog is used as is; one is created only when `create` and every model
    is an existing path, so a typo in a model reference fails with the resolver's one-line
    error instead of leaving an empty catalog behind."""
    from catalog import Catalog
    from catalog.resolve import CatalogResolver

    found = existing_catalog(path)
    if found is not None or not create:
        return found
    resolve = CatalogResolver(None)
    for ref in models:
        resolve(ref)  # raises ModelNotFoundError naming the reference
    return Catalog(path)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="lineage", description="Recover the heredity of neural networks from weights."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(jobs.commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"jobs.commands.{info.name}")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    def body() -> int:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 1
        return args.func(args)

    return run_entry("lineage", body)


if __name__ == "__main__":
    raise SystemExit(main())
