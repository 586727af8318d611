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
    parser.add_argument("--format", choices=FORMATS, default="table",
                        help="table (for people), csv or json (for scripts)")
    # Defaults live in catalog.query (QueryLimits); None here means "the library's".
    parser.add_argument("--timeout", type=duration, default=None,
                        help="stop a query after this long: 60, 60s, 5m; 0 = never "
                        "(default 60s)")
    parser.add_argument("--memory-limit", default=None,
                        help="DuckDB memory limit for the query, e.g. 512MB, 4GB "
                        "(default 2GB)")
    add_catalog_option(parser)
    parser.set_defaults(func=run)


def duration(text: str) -> float:
    """60 / 60s / 5m / 1h -> seconds (argparse turns a ValueError into a usage error)."""
    text = text.strip().lower()
    scale = {"s": 1, "m": 60, "h": 3600}.get(text[-1:], None)
    value = float(text[:-1] if scale else text)
    if value < 0:
        raise ValueError(text)
    return value * (scale or 1)


def run(args: argparse.Namespace) -> int:
    from catalog import Catalog
    from catalog.query import QueryLimits, run_query

    given: dict = {}
    if args.timeout is not None:
        given["timeout_s"] = args.timeout or None  # 0: no timeout
    if args.memory_limit is not None:
        given["memory_limit"] = args.memory_limit
    limits = QueryLimits(**given)
    result = run_query(Catalog(args.catalog, create=False), args.query, args.param, limits)
    print_rows(result.columns, result.rows, args.format)
    return 0
