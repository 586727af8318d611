"""`lineage graph MODEL --format mermaid|dot|html`: draw a model's recovered family."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jobs.cli import add_catalog_option


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "graph",
        help="draw a model's family from the latest recovery (Mermaid, DOT or HTML)",
        description="Draw the recovered family (connected component) of MODEL: edges coloured "
        "by relation with their confidence; the HTML page is self-contained (no network) "
        "and shows each model's card claims beside what the weights say.",
    )
    parser.add_argument("model", help="model id, e.g. org/name")
    parser.add_argument("--format", choices=("mermaid", "dot", "html"), default="mermaid")
    parser.add_argument("--out", help="write to this file instead of stdout")
    parser.add_argument("--run", help="recover run id (default: the latest successful one)")
    add_catalog_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from catalog import Catalog
    from catalog.recovery_io import latest_recover_run, model_cards, recovered_edges
    from lineage.errors import CatalogError, ModelNotFoundError
    from lineage.recovery.cards import card_disagreements
    from lineage.recovery.inputs import CardEdge
    from lineage.recovery.render import family_of, to_dot, to_html, to_mermaid

    catalog = Catalog(args.catalog, create=False)
    run_id = args.run or latest_recover_run(catalog)
    if run_id is None:
        raise CatalogError(f"catalog {catalog.root}", "has no successful recover run",
                           "Run `lineage recover --catalog DIR` first")
    cards = model_cards(catalog)
    if args.model not in cards:
        raise ModelNotFoundError(f"model {args.model!r}", "is not in the catalog",
                                 "List models with: lineage sql 'SELECT model_id FROM models'")
    edges = recovered_edges(catalog, run_id)
    claims = [CardEdge(p, m, c.get("card_relation")) for m, c in cards.items()
              for p in c.get("card_base_models") or []]
    family = family_of(args.model, edges, cards, card_disagreements(edges, claims, set(cards)))
    text = {"mermaid": to_mermaid, "dot": to_dot, "html": to_html}[args.format](family)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"{len(family.nodes)} models, {len(family.edges)} edges -> {args.out}")
    else:
        sys.stdout.write(text)
    return 0
