"""Model Graph recovery on the zoo, ours against MoTHer's own recipe, and at scale.

    python bench/recovery_bench.py [ZOO...] [--cache DIR] [--work DIR] [--scale N]

ZOO: vthr-ft, vthr-lora, mixed, tiny (default: vthr-ft vthr-lora mixed). Each zoo is
built (or fetched from the zoo cache), indexed into a catalog under --work (reused
across runs), recovered with no flags and no tree count, and scored against its
ground truth. MoTHer's recipe (fixed kurtosis regime, lam 0.3, the tree count per
architecture given, Ward clustering; rank distance on the LoRA split) runs on the same
fingerprints through our code. --scale N times recovery of N synthetic fingerprinted
models (in-memory: no weights, no catalog).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from catalog import Catalog  # noqa: E402
from catalog.recovery_io import load_inputs, model_sources  # noqa: E402
from jobs.local_index import index_local  # noqa: E402
from jobs.recover import LocalMatrices, run_recover  # noqa: E402
from lineage.recovery.evaluate import evaluate_graph  # noqa: E402
from lineage.recovery.mother import mother_recipe  # noqa: E402
from lineage.zoo import build_zoo, load_ground_truth  # noqa: E402

COLUMNS = ("directed", "undirected", "ari", "trees_exact", "merge_precision", "merge_recall")


def zoo_catalog(name: str, cache: Path | None, work: Path) -> tuple[Catalog, dict]:
    zoo = build_zoo(name, cache_dir=cache, progress=False)
    catalog_dir = work / f"{name}-{zoo.spec_hash[:12]}"
    fresh = not (catalog_dir / "catalog.duckdb").exists()
    catalog = Catalog(catalog_dir)
    if fresh:
        index_local(catalog, [zoo.root], progress=False)
    return catalog, load_ground_truth(zoo.root)


def mother_scores(catalog: Catalog, truth: dict, lora: bool) -> dict:
    models, _ = load_inputs(catalog)
    tree_of = {n["id"]: n["tree"] for n in truth["nodes"]}
    per_group: dict[str, set] = defaultdict(set)
    for m in models:
        if not m.is_adapter:
            per_group[m.arch_signature].add(tree_of.get(m.model_id))
    source = LocalMatrices(model_sources(catalog)) if lora else None
    started = time.perf_counter()
    edges, trees = mother_recipe(models, {s: len(t) for s, t in per_group.items()},
                                 lora=lora, matrices=source)
    scores = evaluate_graph(truth, [(e.parent, e.child, e.relation) for e in edges], trees)
    scores["overall"]["seconds"] = time.perf_counter() - started
    return scores


def _fmt(value: object) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def run_zoo(name: str, cache: Path | None, work: Path) -> None:
    catalog, truth = zoo_catalog(name, cache, work)
    report = run_recover(catalog)
    ours = evaluate_graph(truth, [(e.parent, e.child, e.relation) for e in report.result.edges],
                          report.result.trees)["overall"]
    theirs = mother_scores(catalog, truth, lora=name.endswith("lora"))["overall"]
    print(f"\n== {name}: {truth['zoo']['n_models']} models, {truth['zoo']['n_trees']} trees, "
          f"{ours['edges']} true edges ({ours['merge_edges']} merge); ours "
          f"{report.seconds:.1f}s (incl. loading and exact ranks), MoTHer "
          f"{theirs['seconds']:.1f}s")
    print(f"{'':10}" + "".join(f"{c:>17}" for c in COLUMNS))
    print(f"{'ours':10}" + "".join(f"{_fmt(ours[c]):>17}" for c in COLUMNS))
    print(f"{'MoTHer':10}" + "".join(f"{_fmt(theirs[c]):>17}" for c in COLUMNS))
    for sig, info in report.result.direction.items():
        print(f"  group {sig}: {info['models']} models -> {info['trees']} trees, "
              f"cut {info['cut']}, signs {info['signs']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("zoos", nargs="*", default=["vthr-ft", "vthr-lora", "mixed"])
    parser.add_argument("--cache", type=Path, default=None, help="zoo cache directory")
    parser.add_argument("--work", type=Path, default=Path("/tmp/lineage-recovery-bench"))
    parser.add_argument("--scale", type=int, default=0, help="synthetic models to time")
    args = parser.parse_args(argv)
    for name in args.zoos:
        run_zoo(name, args.cache, args.work)
    if args.scale:
        from bench.recovery_scale import time_scale

        time_scale(args.scale)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
