"""Fit recovery's confidence maps on DEVELOPMENT sweep draws, and show what they give.

    python bench/calibrate_confidence.py --draws N [--seed S] [--work DIR]

Each draw (lineage.zoo.sweep; seeds < 1000 only: held-out draws never take part) is
built or taken from the zoo cache, indexed (or its catalog under --work reused) and
recovered. Every recovered tree edge gives (placement margin, was the parent right,
undirected) and every merge edge (explanation margin, readings tied, was it right).
Logistic regression on log(margin) fits lineage.recovery.calibration's PLACEMENT_A and
PLACEMENT_B; the script prints them, and the reliability table of the current maps on
the same draws. Copy the constants into calibration.py only from development draws,
then check them with `lineage eval --calibration` / the sweep on held-out seeds.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from catalog import Catalog  # noqa: E402
from jobs.local_index import index_local  # noqa: E402
from jobs.recover import run_recover  # noqa: E402
from lineage.recovery.evaluate import (  # noqa: E402
    confidence_rows,
    reliability_of,
    render_reliability,
)
from lineage.zoo import build_zoo  # noqa: E402
from lineage.zoo.sweep import HOLDOUT_SEED, draw  # noqa: E402


def draw_edges(seed: int, index: int, work: Path) -> tuple[dict, list]:
    d = draw(seed, index)
    zoo = build_zoo(d.spec, progress=False)
    folder = work / f"{d.spec['name']}-{zoo.spec_hash[:12]}"
    if not (folder / "catalog.duckdb").exists():
        index_local(Catalog(folder), [zoo.root], progress=False)
    return zoo.ground_truth, run_recover(Catalog(folder)).result.edges


def samples(truth: dict, edges: list) -> tuple[list, list]:
    true = {(e["parent"], e["child"]) for e in truth["edges"]}
    undirected = {frozenset(e) for e in true}
    placement, merges = [], []
    for e in edges:
        ev = e.evidence
        if "placement_margin" in ev:
            placement.append((ev["placement_margin"], frozenset((e.parent, e.child))
                              in undirected))
        elif e.relation == "merge":
            merges.append((ev.get("explanation_margin"), ev.get("equally_good_readings", 1),
                           (e.parent, e.child) in true))
    return placement, merges


def fit_placement(points: list[tuple[float, bool]]) -> tuple[float, float]:
    from sklearn.linear_model import LogisticRegression

    x = np.array([[math.log(max(m, 1e-6))] for m, _ in points])
    y = np.array([ok for _, ok in points], dtype=int)
    if len(set(y)) < 2:
        raise SystemExit(f"all {len(y)} placements are {'right' if y[0] else 'wrong'}: "
                         "too little to fit; run more draws")
    model = LogisticRegression(C=100.0).fit(x, y)
    return float(model.intercept_[0]), float(model.coef_[0, 0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--draws", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/lineage-calibration"))
    args = parser.parse_args(argv)
    if args.seed >= HOLDOUT_SEED:
        parser.error(f"seeds >= {HOLDOUT_SEED} are held out: calibrate on development draws")
    placement, merges, rel_rows = [], [], []
    for i in range(args.draws):
        truth, edges = draw_edges(args.seed, i, args.work)
        p, m = samples(truth, edges)
        placement += p
        merges += m
        rel_rows.append((truth, edges))
        print(f"draw {args.seed}/{i}: {len(p)} tree edges ({sum(ok for _, ok in p)} placed "
              f"right), {len(m)} merge edges ({sum(ok for *_, ok in m)} right)", flush=True)
    a, b = fit_placement(placement)
    print(f"\nPLACEMENT_A, PLACEMENT_B = {a:.3f}, {b:.3f}   "
          f"(from {len(placement)} tree edges of draws {args.seed}/0..{args.draws - 1})")
    for margin, ties, ok in merges:
        print(f"  merge edge: margin {margin}, readings tied {ties}, right {ok}")
    rows = [r for truth, edges in rel_rows for r in confidence_rows(
        truth, [(e.parent, e.child, e.confidence) for e in edges])]
    print("\nreliability of the current maps on these draws:")
    print(render_reliability(reliability_of(rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
