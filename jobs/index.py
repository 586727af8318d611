"""`python -m jobs.index --catalog DIR --seeds ...`: crawl the Hub into a catalog on Ray.

Runs as is on a laptop (starts a local Ray) and under
`ray job submit --working-dir . -- python -m jobs.index ...` (joins the cluster).
"""

from __future__ import annotations

import argparse

from jobs.crawl.options import add_crawl_arguments, options_from_args
from jobs.entry import Parser, run_entry


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m jobs.index",
        description="Crawl Hub model families and fingerprint them into a catalog, on Ray.",
    )
    parser.add_argument("--catalog", required=True, help="catalog directory")
    add_crawl_arguments(parser)
    return parser


def run_crawl(args: argparse.Namespace, **overrides: object) -> int:
    """Connect Ray, crawl, print the report; the exit status says if anything worked."""
    from catalog import Catalog
    from jobs.crawl import crawl
    from jobs.ray_session import ray_session

    opts = options_from_args(args)
    for key, value in overrides.items():
        setattr(opts, key, value)
    with ray_session(args.ray_address):
        report = crawl(Catalog(args.catalog), opts)
    print(report.summary(), flush=True)
    for model_id, why in sorted(report.skipped.items()):
        print(f"  skipped {model_id}: {why}")
    for model_id, why in sorted(report.failed.items()):
        print(f"  failed {model_id}: {why}")
    nothing_worked = report.failed and not (report.fingerprinted or report.unchanged)
    return 1 if nothing_worked else 0


def main(argv: list[str] | None = None) -> int:
    return run_entry("jobs.index", lambda: run_crawl(build_parser().parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
