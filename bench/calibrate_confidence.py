"""Fit recovery's confidence maps on DEVELOPMENT sweep draws, and show what they give.

    python bench/calibrate_confidence.py --draws N [--seed S[:N] ...] [--work DIR] [--spent]

Each draw (lineage.zoo.sweep; seeds < 1000 only, unless --spent: held-out seeds
already checked once, which count as development data from then on; never a fresh
one) is built or taken from the zoo cache, indexed (or its catalog under --work reused;
`{seed}` in --work is replaced by each seed, e.g. --work '/work/ho{seed}' for the
sweep's kept catalogs) and recovered. Every recovered tree edge gives (placement
margin, was the parent right, undirected) and every merge edge (explanation margin,
readings tied, was it right). Logistic regression on log(margin) fits
lineage.recovery.calibration's PLACEMENT_A and PLACEMENT_B, and maximum likelihood
with those kept a floor under the weights-placed edges the child's card confirms
(CONFIRMED_FLOOR) and one under the rest; the curve of the full-rank weights-placed
edges no card confirms (UNCONFIRMED_FULL; every edge is unconfirmed with
--weights-only, recovery without cards) and the share right of the low-rank ones; the
card-placed edges' CARD_CAP, and the
share right among merge edges no other reading rivalled UNIQUE_MERGE (the
maximum-likelihood constant); the script prints them, and the reliability table of the
current maps on the same draws. Copy the constants into calibration.py only from
development draws, then check them with `lineage eval
--calibration` / the sweep on held-out seeds never used.
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
from lineage.recovery import RecoveryOptions  # noqa: E402
from lineage.recovery.calibration import PLACEMENT_A, PLACEMENT_B  # noqa: E402
from lineage.recovery.evaluate import (  # noqa: E402
    confidence_rows,
    reliability_of,
    render_reliability,
)
from lineage.zoo import build_zoo  # noqa: E402
from lineage.zoo.sweep import HOLDOUT_SEED, draw  # noqa: E402


def draw_edges(seed: int, index: int, work: Path, use_cards: bool = True
               ) -> tuple[dict, list]:
    d = draw(seed, index)
    zoo = build_zoo(d.spec, progress=False)
    folder = work / f"{d.spec['name']}-{zoo.spec_hash[:12]}"
    if not (folder / "catalog.duckdb").exists():
        index_local(Catalog(folder), [zoo.root], progress=False)
    options = RecoveryOptions(use_cards=use_cards)
    return zoo.ground_truth, run_recover(Catalog(folder), options=options).result.edges


def samples(truth: dict, edges: list) -> tuple[list, list]:
    true = {(e["parent"], e["child"]) for e in truth["edges"]}
    undirected = {frozenset(e) for e in true}
    placement, merges = [], []
    for e in edges:
        ev = e.evidence
        if "placement_margin" in ev:
            placement.append((ev["placement_margin"], frozenset((e.parent, e.child))
                              in undirected, ev.get("placed_by"),
                              ev.get("direction_probability", 1.0), (e.parent, e.child) in true,
                              ev.get("card_posterior"), bool(ev.get("card_confirmed")),
                              bool(ev.get("low_rank"))))
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


def fit_tie_floor(points: list[tuple[float, float, bool]], a: float, b: float) -> float:
    """The floor F of the weights-placed edges' placement probability max(F, logistic(a
    + b log m)), a and b kept, by maximum likelihood of what the edges' confidence
    claims: the edge right as directed with probability direction * placement. (Right
    as directed, not undirected: where the margin that binds is the order margin, a
    parent and its near-copy that might stand the other way round, the undirected edge
    is right either way and only the direction says how often the guess is.)"""
    from scipy.optimize import minimize_scalar

    lm = np.log(np.clip([m for m, _, _ in points], 1e-6, None))
    curve = 1.0 / (1.0 + np.exp(-(a + b * lm)))

    def nll(floor: float) -> float:
        return _claims_nll(points, np.maximum(floor, curve))

    return float(minimize_scalar(nll, bounds=(0.5, 0.99), method="bounded").x)


def _claims_nll(points: list[tuple[float, float, bool]], placement: np.ndarray) -> float:
    """Negative log likelihood of (_, direction, right as directed) points whose edges
    claim direction * placement."""
    direction = np.array([d for _, d, _ in points], dtype=float)
    y = np.array([ok for *_, ok in points], dtype=float)
    p = np.clip(direction * placement, 1e-9, 1 - 1e-9)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).sum())


def fit_card_cap(points: list[tuple[float, float, bool]]) -> float:
    """The cap C on a card-placed edge's placement probability min(C, posterior), by
    maximum likelihood of what the edges' confidence claims (direction * placement,
    against being right as directed, as fit_tie_floor). The posterior compares the
    card's reliability with the weights' probability for their own reading; both are
    estimates, and a product of two estimated odds claims more than it knows where
    both are extreme. Bounded by the unrivalled weights placement (a card never claims
    more than the weights could)."""
    from scipy.optimize import minimize_scalar

    from lineage.recovery.calibration import placement_probability

    posterior = np.array([p for p, _, _ in points], dtype=float)

    def nll(cap: float) -> float:
        return _claims_nll(points, np.minimum(cap, posterior))

    return float(minimize_scalar(nll, bounds=(0.5, placement_probability(1.0)),
                                 method="bounded").x)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--draws", type=int, default=6)
    parser.add_argument("--seed", nargs="+", default=["0"],
                        help="seeds, each optionally SEED:DRAWS (default --draws)")
    parser.add_argument("--work", default="/tmp/lineage-calibration")
    parser.add_argument("--spent", action="store_true",
                        help="allow held-out seeds that were already checked once")
    parser.add_argument("--weights-only", action="store_true",
                        help="recover without cards (RecoveryOptions.use_cards): every "
                        "weights-placed edge is then unconfirmed")
    args = parser.parse_args(argv)
    seeds = [(int(s.split(":")[0]), int(s.split(":")[1]) if ":" in s else args.draws)
             for s in args.seed]
    if any(s >= HOLDOUT_SEED for s, _ in seeds) and not args.spent:
        parser.error(f"seeds >= {HOLDOUT_SEED} are held out: calibrate on development draws "
                     "(--spent for held-out seeds already checked, never a fresh one)")
    placement, merges, rel_rows = [], [], []
    for seed, draws in seeds:
        work = Path(args.work.replace("{seed}", str(seed)))
        for i in range(draws):
            truth, edges = draw_edges(seed, i, work, not args.weights_only)
            p, m = samples(truth, edges)
            placement += p
            merges += m
            rel_rows.append((truth, edges))
            print(f"draw {seed}/{i}: {len(p)} tree edges ({sum(x[1] for x in p)} placed "
                  f"right), {len(m)} merge edges ({sum(ok for *_, ok in m)} right)", flush=True)
    a, b = fit_placement([(x[0], x[1]) for x in placement])
    full_name = "UNCONFIRMED_FULL" if args.weights_only else "UNCONFIRMED_WITH_CARDS"
    for name, low in ((full_name, False), ("UNCONFIRMED_LOW_RANK", True)):
        tier = [(x[0], x[1]) for x in placement
                if x[2] == "weights" and not x[6] and x[7] == low]
        right = sum(ok for _, ok in tier)
        if tier:  # Laplace's rule: the constant when the margin tells little
            rate = (right + 1) / (len(tier) + 2)
            print(f"{name}: {right} of {len(tier)} weights-placed "
                  f"{'low-rank' if low else 'full'} edges no card confirms placed right; "
                  f"constant logit {math.log(rate / (1 - rate)):.3f} (rate {rate:.3f})")
        if len(tier) > 1 and 0 < right < len(tier):
            ua, ub = fit_placement(tier)
            print(f"{name} = {ua:.3f}, {ub:.3f}   (logistic regression on log margin)")
    card_placed = [(post, d, ok) for _, _, by, d, ok, post, *_ in placement
                   if by == "card" and post is not None]
    print(f"\nPLACEMENT_A, PLACEMENT_B = {a:.3f}, {b:.3f}   "
          f"(from {len(placement)} tree edges of draws {' '.join(args.seed)})")
    for name, confirmed in (("CONFIRMED_FLOOR", True), ("floor of unconfirmed edges", False)):
        weights_placed = [(m, d, ok) for m, _, by, d, ok, _, conf, _ in placement
                          if by == "weights" and conf == confirmed]
        if weights_placed:
            floor = fit_tie_floor(weights_placed, PLACEMENT_A, PLACEMENT_B)
            print(f"{name} = {floor:.3f}   (the current A, B kept; from "
                  f"{len(weights_placed)} weights-placed edges a card "
                  f"{'confirms' if confirmed else 'does not confirm'})")
    if card_placed:
        print(f"CARD_CAP = {fit_card_cap(card_placed):.3f}   (from {len(card_placed)} "
              "card-placed edges)")
    unrivalled = [ok for margin, _, ok in merges if margin is None]
    if unrivalled:  # the maximum-likelihood constant of a Bernoulli is its mean
        print(f"UNIQUE_MERGE = {sum(unrivalled) / len(unrivalled):.3f}   (from "
              f"{len(unrivalled)} merge edges no other reading rivalled)")
    for margin, ties, ok in merges:
        if margin is not None:
            print(f"  rivalled merge edge: margin {margin}, readings tied {ties}, right {ok}")
    rows = [r for truth, edges in rel_rows for r in confidence_rows(
        truth, [(e.parent, e.child, e.confidence) for e in edges])]
    print("\nreliability of the current maps on these draws:")
    print(render_reliability(reliability_of(rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
