"""`lineage graph MODEL --format mermaid|dot|html`: draw a model's recovered family;
`lineage graph --all --format html`: the atlas of the whole catalog on one page."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jobs.cli import add_catalog_option


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "graph",
        help="draw a model's family, or the whole catalog (--all), from the latest recovery",
        description="Draw the recovered family (connected component) of MODEL: edges coloured "
        "by relation with their confidence; the HTML page is self-contained (no network) "
        "and shows each model's card claims beside what the weights say. With --all and "
        "--format html: the atlas, every family of the catalog on one page, with search by "
        "id, zoom and pan, and a confidence slider (Cytoscape.js, inlined).",
    )
    parser.add_argument("model", nargs="?", help="catalog id (e.g. org/name) or model folder")
    parser.add_argument("--all", action="store_true",
                        help="every model of the catalog (the atlas view with --format html)")
    parser.add_argument("--format", choices=("mermaid", "dot", "html"), default="mermaid")
    parser.add_argument("--out", help="write to this file instead of stdout")
    parser.add_argument("--run", help="recover run id (default: the latest successful one)")
    add_catalog_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from catalog import Catalog
    from catalog.recovery_io import latest_recover_run, model_cards, recovered_edges
    from lineage.errors import CatalogError, SpecError
    from lineage.recovery.cards import card_disagreements
    from lineage.recovery.inputs import CardEdge

    if bool(args.model) == bool(args.all):
        raise SpecError("lineage graph", "needs a MODEL or --all (not both)",
                        "e.g. `lineage graph org/name` or `lineage graph --all --format html`")
    catalog = Catalog(args.catalog, create=False)
    run_id = args.run or latest_recover_run(catalog)
    if run_id is None:
        raise CatalogError(f"catalog {catalog.root}", "has no successful recover run",
                           "Run `lineage recover --catalog DIR` first")
    cards = model_cards(catalog)
    edges = recovered_edges(catalog, run_id)
    claims = [CardEdge(p, m, c.get("card_relation")) for m, c in cards.items()
              for p in c.get("card_base_models") or []]
    disagreements = card_disagreements(edges, claims, set(cards))
    if args.all:
        text, counts = _whole_catalog(args.format, cards, edges, disagreements, run_id)
    else:
        text, counts = _one_family(args, catalog, cards, edges, disagreements)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"{counts[0]} models, {counts[1]} edges -> {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def _one_family(args, catalog, cards, edges, disagreements) -> tuple[str, tuple[int, int]]:
    from catalog.resolve import catalog_id_of
    from lineage.errors import ModelNotFoundError
    from lineage.recovery.render import family_of, to_dot, to_html, to_mermaid

    model_id = catalog_id_of(catalog, args.model)
    if model_id is None or model_id not in cards:
        raise ModelNotFoundError(f"model {args.model!r}", "is not in the catalog",
                                 "List models with: lineage sql 'SELECT model_id FROM models'")
    family = family_of(model_id, edges, cards, disagreements)
    text = {"mermaid": to_mermaid, "dot": to_dot, "html": to_html}[args.format](family)
    return text, (len(family.nodes), len(family.edges))


def _whole_catalog(fmt, cards, edges, disagreements, run_id) -> tuple[str, tuple[int, int]]:
    from lineage.recovery.atlas import Atlas, to_atlas_html
    from lineage.recovery.render import Family, to_dot, to_mermaid

    if fmt == "html":
        atlas = Atlas(cards, edges, disagreements, run_id, f"lineage atlas: {len(cards)} models")
        return to_atlas_html(atlas), (len(cards), len(edges))
    family = Family(min(cards, default=""), sorted(cards), edges, cards, disagreements)
    return {"mermaid": to_mermaid, "dot": to_dot}[fmt](family), (len(cards), len(edges))
