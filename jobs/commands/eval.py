"""`lineage eval --truth GROUND_TRUTH [--catalog DIR]`: score recovery against a truth."""

from __future__ import annotations

import argparse
import json

from jobs.cli import add_catalog_option

COLUMNS = ("edges", "directed", "undirected", "merge_edges", "merge_precision", "merge_recall")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="score the latest recovery against a ground truth (a zoo's ground_truth.json)",
        description="Directed-edge accuracy (placement and direction, as MoTHer scores it), "
        "undirected accuracy, clustering (adjusted Rand index, trees recovered exactly) "
        "and merge-edge precision/recall, per tree and overall.",
    )
    parser.add_argument("--truth", required=True,
                        help="ground_truth.json, or the zoo folder holding it")
    parser.add_argument("--run", help="recover run id (default: the latest successful one)")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument("--calibration", action="store_true",
                        help="also print the reliability table: confidence deciles against "
                        "the fraction of edges that are right, and the calibration error")
    add_catalog_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from catalog import Catalog
    from catalog.recovery_io import latest_recover_run, recovered_edges
    from lineage.errors import CatalogError
    from lineage.recovery.evaluate import evaluate_graph, reliability, render_reliability
    from lineage.zoo import load_ground_truth

    truth_path = Path(args.truth)
    truth = load_ground_truth(truth_path.parent if truth_path.is_file() else truth_path)
    catalog = Catalog(args.catalog, create=False)
    run_id = args.run or latest_recover_run(catalog)
    if run_id is None:
        raise CatalogError(f"catalog {catalog.root}", "has no successful recover run",
                           "Run `lineage recover --catalog DIR` first")
    found = recovered_edges(catalog, run_id)
    scores = evaluate_graph(truth, [(e.parent, e.child, e.relation) for e in found])
    calibration = reliability(truth, [(e.parent, e.child, e.confidence) for e in found])
    if args.format == "json":
        extra = {"calibration": calibration} if args.calibration else {}
        print(json.dumps({"run_id": run_id, **scores, **extra}, indent=1))
    else:
        print(render_table(scores, run_id))
        if args.calibration:
            print(render_reliability(calibration))
    return 0


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def render_table(scores: dict, run_id: str) -> str:
    head = ["tree", *COLUMNS, "exact"]
    rows = [[str(t), *(_fmt(s[c]) for c in COLUMNS), _fmt(s["exact"])]
            for t, s in scores["per_tree"].items()]
    o = scores["overall"]
    rows.append(["all", *(_fmt(o[c]) for c in COLUMNS), _fmt(o["trees_exact"])])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    lines = [f"run {run_id}", "  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.append(f"clustering: adjusted Rand {o['ari']:.3f}, trees recovered exactly "
                 f"{o['trees_exact']:.3f}; relations right {_fmt(o['relation_accuracy'])}")
    return "\n".join(lines)
