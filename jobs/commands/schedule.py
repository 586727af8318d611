"""`lineage schedule --slot now --every 1d --seeds ...`: one incremental crawl per slot.

The slot gives a deterministic submission id (`lineage-index-<UTC slot>`); when the
catalog's runs table says that id already succeeded, the command exits 0 doing nothing.
Otherwise it crawls only what changed since the last successful crawl.
"""

from __future__ import annotations

import argparse

from jobs.cli import add_catalog_option


def register(subparsers: argparse._SubParsersAction) -> None:
    from jobs.crawl.options import add_crawl_arguments

    parser = subparsers.add_parser(
        "schedule",
        help="run the incremental crawl of one schedule slot, at most once",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--slot", default="now", help="'now' or an ISO time inside the slot")
    parser.add_argument("--every", default="1d", help="slot length: 30m, 6h, 1d (default 1d)")
    parser.add_argument(
        "--print-id", action="store_true", help="print the slot's submission id and exit"
    )
    parser.add_argument(
        "--full", action="store_true", help="ignore the last successful run: list everything"
    )
    add_crawl_arguments(parser)
    add_catalog_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from jobs.crawl.schedule import parse_every, parse_slot, submission_id

    run_id = submission_id(parse_slot(args.slot), parse_every(args.every))
    if args.print_id:
        print(run_id)
        return 0
    from catalog import Catalog
    from catalog.runs import last_successful_run, run_status
    from jobs.index import run_crawl

    catalog = Catalog(args.catalog)
    if run_status(catalog, run_id) == "succeeded":
        print(f"{run_id}: already succeeded; nothing to do")
        return 0
    since = args.since
    if since is None and not args.full:
        last = last_successful_run(catalog, "crawl")
        since = last["started_at"] if last else None
    print(f"{run_id}: crawling changes since {since or 'the beginning'}", flush=True)
    return run_crawl(args, run_id=run_id, since=since)
