"""`lineage recover --catalog DIR`: recover the Model Graph and write recovered edges."""

from __future__ import annotations

import argparse
import json
import sys

from jobs.cli import add_catalog_option


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "recover",
        help="recover the Model Graph (fine-tunes, LoRA, merges, casts, copies, adapters)",
        description="Recover who was fine-tuned / merged / adapted / cast from whom, from the "
        "catalog's fingerprints alone (never weights: LoRA ranks from the rank sketches, "
        "TIES/DARE merges from the coordinate samples), and write the edges (source = "
        "recovered) with this run's id. No tree count, no direction flag: both are "
        "chosen from the data.",
    )
    add_catalog_option(parser)
    parser.add_argument("--no-ranks", action="store_true",
                        help="deprecated and ignored (recovery never reads weights)")
    parser.add_argument("--weights-only", action="store_true",
                        help="ignore model cards (base models, relations) and Hub creation "
                        "times: the graph the weights alone give (adapter configs stay)")
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from catalog import Catalog
    from jobs.recover import NO_RANKS_DEPRECATION, run_recover, summary
    from lineage.recovery import RecoveryOptions

    if args.no_ranks:
        print(f"warning: {NO_RANKS_DEPRECATION}", file=sys.stderr)
    options = RecoveryOptions(use_cards=not args.weights_only)
    report = run_recover(Catalog(args.catalog, create=False), options=options)
    if args.json:
        print(json.dumps({"run_id": report.run_id, **report.result.to_dict()}, indent=1,
                         default=str))
    else:
        print(summary(report))
    return 0
