"""Model Graph recovery on the zoo, ours against MoTHer's own recipe, and at scale.

    python bench/recovery_bench.py [ZOO...] [--cache DIR] [--work DIR] [--scale N[,N...]]
                                   [--workers W]

ZOO: vthr, mixed, tiny, any preset, or a built zoo's folder (default: vthr mixed). Each is
built (or fetched from the zoo cache), indexed into a catalog under --work (reused
across runs), recovered with no flags and no tree count, and scored against its
ground truth; a zoo with VTHR splits (vthr: full-FT and LoRA trees, both in one
catalog) is scored per split as well. MoTHer's recipe (fixed kurtosis regime, lam 0.3,
the tree count per architecture given, Ward clustering; rank distance on the LoRA
split) runs on the same fingerprints through our code. --scale N times recovery of N
synthetic fingerprinted models (no weights, no catalog; groups of at most 100k made
lazily, one per worker), --scale 10000,100000,1000000 prints the growth curve; --workers
sets the processes (default 2).
"""

from __future__ import annotations

import argparse
import math
import os
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


GROUP_LIMIT = 100_000  # models per synthetic architecture group (the largest)


def time_scale(n_models: int, per_tree: int = 20, workers: int = 2) -> dict:
    """Recovery of `n_models` SYNTHETIC fingerprinted models (synthetic.synthetic_group:
    random-walk trees of `per_tree`, 4 square 32x32 matrices per model), in groups of at
    most GROUP_LIMIT models, each generated lazily inside the worker that recovers it
    (a million models' sketches would not fit in memory at once). Prints wall time
    (generation included, and recovery alone summed over workers), the peak RSS of this
    process and its workers together (sampled), and directed accuracy on the truth."""
    from functools import partial

    from lineage.recovery import RecoveryOptions
    from lineage.recovery.recover import recover_parts
    from lineage.recovery.synthetic import synthetic_edges, synthetic_group

    size = min(n_models, GROUP_LIMIT)
    groups = -(-n_models // size)
    parts = [partial(synthetic_group, size, per_tree, arch=f"arch-{g}", seed=g)
             for g in range(groups)]
    sampler = RssSampler()
    cpu, main_cpu = cpu_seconds(), time.process_time()
    started = time.perf_counter()
    result, done = recover_parts(parts, options=RecoveryOptions(workers=workers, threads=1))
    seconds = time.perf_counter() - started
    cpu, main_cpu = cpu_seconds() - cpu, time.process_time() - main_cpu
    peak = sampler.stop()
    found = {(e.parent, e.child) for e in result.edges}
    true = [e for g in range(groups)
            for e in synthetic_edges(size, per_tree, arch=f"arch-{g}")]
    acc = sum(e in found for e in true) / len(true)
    load = sum(p.load_seconds for p in done)
    work = sum(p.recover_seconds for p in done)
    load_avg = os.getloadavg()[0]
    print(f"== scale: {groups * size} synthetic models ({groups} groups x {size // per_tree} "
          f"trees x {per_tree}), {workers} workers: {seconds:.1f}s wall "
          f"(generation {load:.1f}s + recovery {work:.1f}s summed over workers; "
          f"{cpu:.1f} CPU-s in all, {main_cpu:.1f} of them in the main process), "
          f"peak RSS {peak / 2**30:.2f} GiB, {len(result.trees)} trees, directed accuracy "
          f"{acc:.4f}, load average {load_avg:.1f} on {os.cpu_count()} CPUs", flush=True)
    return {"models": groups * size, "seconds": seconds, "cpu": cpu, "peak": peak,
            "accuracy": acc}


def print_growth(runs: list[dict]) -> None:
    """Time and memory per model at each size, and the growth exponent between sizes
    (1.0: linear). CPU-s is the steadier number on a shared machine."""
    print("== growth curve")
    print(f"{'models':>10}{'wall s':>10}{'CPU-s':>10}{'CPU us/model':>14}{'exponent':>10}"
          f"{'peak GiB':>10}{'accuracy':>10}")
    for k, run in enumerate(runs):
        prev = runs[k - 1] if k else run
        exponent = "-"
        if run["models"] != prev["models"]:
            slope = math.log(run["cpu"] / prev["cpu"]) / math.log(run["models"] / prev["models"])
            exponent = f"{slope:.2f}"
        print(f"{run['models']:>10}{run['seconds']:>10.1f}{run['cpu']:>10.1f}"
              f"{1e6 * run['cpu'] / run['models']:>14.1f}{exponent:>10}"
              f"{run['peak'] / 2**30:>10.2f}{run['accuracy']:>10.4f}")


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children: on a shared
    machine the wall time says as much about the others' load as about this run."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class RssSampler:
    """Peak resident memory of this process and all its children together, sampled
    every 0.2 s in a thread (ru_maxrss would give the largest single process)."""

    def __init__(self, every: float = 0.2) -> None:
        import threading

        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)
        self._thread.start()

    def _run(self, every: float) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:  # a worker that just exited
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(every)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def _sizes(text: str) -> list[int]:
    return [int(float(x)) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("zoos", nargs="*", help="default: vthr mixed (none with --scale)")
    parser.add_argument("--cache", type=Path, default=None, help="zoo cache directory")
    parser.add_argument("--work", type=Path, default=Path("/tmp/lineage-recovery-bench"))
    parser.add_argument("--scale", type=_sizes, default=[],
                        help="synthetic models to time: N, or N1,N2,... for the growth curve")
    parser.add_argument("--workers", type=int, default=2,
                        help="processes for --scale (one group each at a time)")
    args = parser.parse_args(argv)
    for name in args.zoos or ([] if args.scale else ["vthr", "mixed"]):
        run_zoo(name, args.cache, args.work)
    runs = [time_scale(n, workers=args.workers) for n in args.scale]
    if len(runs) > 1:
        print_growth(runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
