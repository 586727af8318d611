"""`lineage merge`: run a recipe, list methods, or choose merges by kinship.

    lineage merge RECIPE OUT [--catalog DIR] [--no-register] [--overwrite] [--ray]
    lineage merge --list
    lineage merge --select top-k --pool SQL --out-dir D [--k K] [--scores CSV | --task T]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jobs.cli import add_catalog_option, existing_catalog
from lineage.errors import SpecError

SELECTORS = ("top-k",)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "merge", help="merge models from a mergekit-shaped recipe; list methods; select merges",
        description="Merge models (catalog ids or local paths) with a mergekit-shaped YAML "
        "recipe, then index the output with merge edges to its parents. `fisher: catalog` "
        "under a model uses its registered Fisher (`lineage fisher`).")
    parser.add_argument("recipe", nargs="?", help="recipe YAML file")
    parser.add_argument("out", nargs="?", help="output model folder")
    parser.add_argument("--list", action="store_true", help="list methods, papers, parameters")
    parser.add_argument("--no-register", action="store_true", help="do not index the output")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace OUT when it holds something other than this merge")
    parser.add_argument("--ray", action="store_true",
                        help="run the merge as a Ray task (local Ray unless RAY_ADDRESS)")
    sel = parser.add_argument_group("kinship-guided selection (Hu et al. 2024)")
    sel.add_argument("--select", choices=SELECTORS, help="choose merges from a catalog pool")
    sel.add_argument("--pool", help="read-only SQL whose first column is candidate model ids")
    sel.add_argument("--k", type=int, default=2, help="top models merged pairwise (default 2)")
    sel.add_argument("--out-dir", help="folder receiving one subfolder per merge")
    sel.add_argument("--scores", help="CSV with model_id,score")
    sel.add_argument("--task", help="zoo task(s) scoring models, comma-separated (mean)")
    sel.add_argument("--base", help="common base model (default: from the catalog's edges)")
    sel.add_argument("--method", default="task_arithmetic", help="merge method of each pair")
    sel.add_argument("--weight", type=float, default=0.5, help="per-model weight (default 0.5)")
    sel.add_argument("--threshold", type=float, default=0.95,
                     help="stop when the top models' mean kinship reaches this (default 0.95)")
    sel.add_argument("--generations", type=int, default=1, help="rounds (zoo scores only)")
    add_catalog_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.list:
        return list_methods()
    if args.select:
        return select(args)
    if not args.recipe or not args.out:
        raise SpecError("lineage merge", "needs RECIPE and OUT (or --list, or --select)",
                        "Run `lineage merge recipe.yaml out/merged`")
    return merge(args)


def list_methods() -> int:
    from lineage.merge import REGISTRY, describe

    print("\n\n".join(describe(m) for m in REGISTRY.values()))
    return 0


def _catalog(args: argparse.Namespace, register: bool):
    from catalog import Catalog

    if register:
        return Catalog(args.catalog)
    return existing_catalog(args.catalog)  # not registering: still resolve catalog ids


def merge(args: argparse.Namespace) -> int:
    from jobs.merging import run_merge_job

    if not Path(args.recipe).is_file():  # before a catalog is created for nothing
        raise SpecError(f"recipe {args.recipe!r}", "is not a file",
                        "Give the path of a mergekit-shaped YAML recipe")
    catalog = _catalog(args, not args.no_register)
    if args.ray:
        from jobs.ray_session import ray_session

        with ray_session():
            report = run_merge_job(args.recipe, args.out, catalog=catalog,
                                   register=not args.no_register, overwrite=args.overwrite,
                                   executor="ray")
    else:
        report = run_merge_job(args.recipe, args.out, catalog=catalog,
                               register=not args.no_register, overwrite=args.overwrite)
    print_report(report)
    return 0


def print_report(report) -> None:  # noqa: ANN001 - a MergeJobReport (import kept lazy)
    if report.merged:
        r = report.result
        print(f"merged {len(report.parents)} models with {report.method} -> {report.out_dir} "
              f"({r.n_tensors} tensors, {r.total_bytes / 1e6:.1f} MB, {r.seconds:.1f} s)")
    else:
        print(f"{report.out_dir} already holds this merge (recipe {report.recipe_hash})")
    reg = report.registered
    if reg is not None:
        state = "indexed" if reg.indexed else "already indexed"
        print(f"{state} as {reg.model_id!r}; merge edges: {len(reg.new_edges)} new "
              f"(parents: {', '.join(report.parents.values())}); run {report.run_id}")


def select(args: argparse.Namespace) -> int:
    from catalog import Catalog
    from jobs.merging import select_and_merge

    if not args.pool or not args.out_dir:
        raise SpecError("lineage merge --select", "needs --pool SQL and --out-dir D",
                        "e.g. --pool \"SELECT model_id FROM current_models\" --out-dir merges")
    tasks = [t for t in (args.task or "").split(",") if t]
    report = select_and_merge(
        Catalog(args.catalog, create=False), args.pool, args.out_dir, k=args.k, base=args.base,
        scores_csv=args.scores, tasks=tasks, method=args.method, weight=args.weight,
        threshold=args.threshold, generations=args.generations)
    print_selection(report)
    return 0


def print_selection(report) -> None:  # noqa: ANN001 - a SelectionReport
    from jobs.output import print_rows

    print(f"base: {report.base}")
    columns = ["generation", "merged", "a", "b", "kinship", "score_a", "score_b",
               "score_merged", "why"]
    print_rows(columns, [[row[c] for c in columns] for row in report.rows])
    for i, gen in enumerate(report.generations, 1):
        mean = "-" if gen.mean_kinship is None else f"{gen.mean_kinship:.3f}"
        print(f"generation {i}: top {', '.join(gen.top)}; mean kinship {mean}")
    print(f"stopped: {report.stopped}")
