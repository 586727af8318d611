"""`lineage recover --catalog DIR`: recover the Model Graph and write recovered edges."""

from __future__ import annotations

import argparse
import json

from jobs.cli import add_catalog_option


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "recover",
        help="recover the Model Graph (fine-tunes, LoRA, merges, casts, copies, adapters)",
        description="Recover who was fine-tuned / merged / adapted / cast from whom, from the "
        "catalog's fingerprints (exact ranks of candidate pairs read real weights), and "
        "write the edges (source = recovered) with this run's id. No tree count, no "
        "direction flag: both are chosen from the data.",
    )
    add_catalog_option(parser)
    parser.add_argument("--no-ranks", action="store_true",
                        help="sketches only: never read weights (LoRA edges read as fine-tunes)")
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from catalog import Catalog
    from jobs.recover import run_recover, summary

    report = run_recover(Catalog(args.catalog, create=False), ranks=not args.no_ranks)
    if args.json:
        print(json.dumps({"run_id": report.run_id, **report.result.to_dict()}, indent=1,
                         default=str))
    else:
        print(summary(report))
    return 0
