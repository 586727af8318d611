"""Model Graph recovery on the zoo, ours against MoTHer's own recipe, and at scale.

    python bench/recovery_bench.py [ZOO...] [--cache DIR] [--work DIR] [--scale N]

ZOO: vthr, mixed, tiny, any preset, or a built zoo's folder (default: vthr mixed). Each is
built (or fetched from the zoo cache), indexed into a catalog under --work (reused
across runs), recovered with no flags and no tree count, and scored against its
ground truth; a zoo with VTHR splits (vthr: full-FT and LoRA trees, both in one
catalog) is scored per split as well. MoTHer's recipe (fixed kurtosis regime, lam 0.3,
the tree count per architecture given, Ward clustering; rank distance on the LoRA
split) runs on the same fingerprints through our code. --scale N times recovery of N
synthetic fingerprinted models (in memory: no weights, no catalog).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from catalog import Catalog  # noqa: E402
from catalog.recovery_io import load_inputs  # noqa: E402
from jobs.local_index import index_local  # noqa: E402
from jobs.recover import run_recover  # noqa: E402
from lineage.recovery.evaluate import evaluate_graph  # noqa: E402
from lineage.recovery.mother import mother_recipe  # noqa: E402
from lineage.zoo import build_zoo, load_ground_truth  # noqa: E402

COLUMNS = ("directed", "undirected", "ari", "trees_exact", "merge_precision", "merge_recall")


def zoo_catalog(name: str, cache: Path | None, work: Path) -> tuple[Catalog, dict]:
    """`name`: a preset (built or fetched from the cache) or a built zoo's folder."""
    if Path(name).is_dir():
        root = Path(name)
        digest = load_ground_truth(root)["zoo"]["spec_hash"]
    else:
        zoo = build_zoo(name, cache_dir=cache, progress=False)
        root, digest = zoo.root, zoo.spec_hash
    catalog_dir = work / f"{load_ground_truth(root)['zoo']['name']}-{digest[:12]}"
    fresh = not (catalog_dir / "catalog.duckdb").exists()
    catalog = Catalog(catalog_dir)
    if fresh:
        index_local(catalog, [root], progress=False)
    return catalog, load_ground_truth(root)


def mother_scores(catalog: Catalog, truth: dict, lora: bool) -> dict:
    models, _ = load_inputs(catalog)
    tree_of = {n["id"]: n["tree"] for n in truth["nodes"]}
    models = [m for m in models if m.model_id in tree_of]  # a split: its models only
    per_group: dict[str, set] = defaultdict(set)
    for m in models:
        if not m.is_adapter:
            per_group[m.arch_signature].add(tree_of.get(m.model_id))
    started = time.perf_counter()
    edges, trees = mother_recipe(models, {s: len(t) for s, t in per_group.items()},
                                 lora=lora)
    scores = evaluate_graph(truth, [(e.parent, e.child, e.relation) for e in edges], trees)
    scores["overall"]["seconds"] = time.perf_counter() - started
    return scores


def _fmt(value: object) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def split_truth(truth: dict, split: str) -> dict:
    nodes = [n for n in truth["nodes"] if n.get("split") == split]
    ids = {n["id"] for n in nodes}
    return {**truth, "nodes": nodes, "edges": [e for e in truth["edges"] if e["child"] in ids]}


def run_zoo(name: str, cache: Path | None, work: Path) -> None:
    catalog, truth = zoo_catalog(name, cache, work)
    report = run_recover(catalog)
    edges = [(e.parent, e.child, e.relation) for e in report.result.edges]
    splits = sorted({n.get("split") for n in truth["nodes"]} - {None})
    print(f"\n== {name}: {truth['zoo']['n_models']} models, {truth['zoo']['n_trees']} trees; "
          f"ours {report.seconds:.1f}s (incl. loading; ranks from the rank sketches)")
    for label, part in [("all", truth)] + [(s, split_truth(truth, s)) for s in splits]:
        ours = evaluate_graph(part, edges, report.result.trees)["overall"]
        lora = label == "lora"
        theirs = mother_scores(catalog, part, lora=lora)["overall"]
        print(f"-- {name} [{label}]: {len(part['nodes'])} models, {ours['edges']} true edges "
              f"({ours['merge_edges']} merge); MoTHer{' (rank distance)' if lora else ''} "
              f"{theirs['seconds']:.1f}s")
        print(f"{'':10}" + "".join(f"{c:>17}" for c in COLUMNS))
        print(f"{'ours':10}" + "".join(f"{_fmt(ours[c]):>17}" for c in COLUMNS))
        print(f"{'MoTHer':10}" + "".join(f"{_fmt(theirs[c]):>17}" for c in COLUMNS))
    for sig, info in report.result.direction["groups"].items():
        print(f"  group {sig}: {info['models']} models -> {info['trees']} trees, "
              f"cut {info['cut']}")
    print(f"  direction: {report.result.direction.get('rule')}")


def time_scale(n_models: int, per_tree: int = 20, groups: int = 5) -> None:
    """Recovery of `n_models` SYNTHETIC fingerprints (lineage.recovery.synthetic: random
    walk trees, 4 square 32x32 matrices per model, `groups` architectures), timed from
    fingerprints in memory to graph; the catalog load is timed separately on tiny."""
    from lineage.recovery import recover_graph
    from lineage.recovery.synthetic import synthetic_zoo

    trees = max(1, n_models // (per_tree * groups))
    zoos = [synthetic_zoo(trees, per_tree, arch=f"arch-{g}", seed=g) for g in range(groups)]
    models = [m for z in zoos for m in z.models]
    started = time.perf_counter()
    result = recover_graph(models)
    seconds = time.perf_counter() - started
    found = {(e.parent, e.child) for e in result.edges}
    true = [e for z in zoos for e in z.edges]
    acc = sum(e in found for e in true) / len(true)
    print(f"\n== scale: {len(models)} synthetic models ({groups} architectures x {trees} trees "
          f"x {per_tree}): recovered in {seconds:.1f}s on this machine, {len(result.trees)} "
          f"trees found, directed accuracy {acc:.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("zoos", nargs="*", help="default: vthr mixed (none with --scale)")
    parser.add_argument("--cache", type=Path, default=None, help="zoo cache directory")
    parser.add_argument("--work", type=Path, default=Path("/tmp/lineage-recovery-bench"))
    parser.add_argument("--scale", type=int, default=0, help="synthetic models to time")
    args = parser.parse_args(argv)
    for name in args.zoos or ([] if args.scale else ["vthr", "mixed"]):
        run_zoo(name, args.cache, args.work)
    if args.scale:
        time_scale(args.scale)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
