"""`lineage sql "SELECT ..."`: read-only queries over the catalog."""

from __future__ import annotations

import argparse

from jobs.cli import add_catalog_option
from jobs.output import FORMATS, print_rows


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sql",
        help="run a read-only SQL query over the catalog",
        description="Run read-only SQL. Tables/views: models, current_models, tensors, "
        "kinship, edges, artifacts, runs, crawl_state. Macros: ancestors(id), "
        "descendants(id), shared_tensors(a, b), ... Bind values with ? and --param.",
    )
    parser.add_argument("query", help="SQL text (SELECT / WITH / DESCRIBE / EXPLAIN)")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        help="a value bound to the next ? placeholder (repeatable)",
    )
    parser.add_argument("--format", choices=FORMATS, default="table")
    add_catalog_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from catalog import Catalog
    from catalog.query import run_query

    result = run_query(Catalog(args.catalog, create=False), args.query, args.param)
    print_rows(result.columns, result.rows, args.format)
    return 0
