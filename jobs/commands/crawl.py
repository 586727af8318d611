"""`lineage crawl --seeds ...`: crawl Hub model families into the catalog, on Ray."""

from __future__ import annotations

import argparse

from jobs.cli import add_catalog_option


def register(subparsers: argparse._SubParsersAction) -> None:
    from jobs.crawl.options import add_crawl_arguments  # light: argparse + dataclasses

    parser = subparsers.add_parser(
        "crawl",
        help="crawl Hub model families and fingerprint them (Ray)",
        description="From seeds (model ids, author:NAME, search:TERM, everything), walk "
        "documented families through the Hub's base_model filters, probe safetensors "
        "headers by range reads, then fingerprint weights in a pool of Ray actors "
        "(GPU when the cluster has one). Resumable: re-running skips what is done.",
    )
    add_crawl_arguments(parser)
    add_catalog_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jobs.index import run_crawl

    return run_crawl(args)
