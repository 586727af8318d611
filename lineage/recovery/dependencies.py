"""One explanation per linear dependency: which member of an exact combination is the
merge.

If M = B + a (F1 - B) + b (F2 - B), the same dependency reads B = M + a'(F1 - M) + ...
(with a = b = 1 the coefficients are even identical), so the algebra cannot say which
model is the merge. The rest of the family can: a merge tool's output is a new model
the others did not come from, while the base is where its fine-tunes (and usually its
own parent and other children) branch off. Taking the true merge out of the tree leaves
the fine-tuning tree intact; taking the base out forces its neighbours to join through
longer detours (independent increments add in squares, so every detour is longer). So
each dependency is explained, first, by coefficients in the range merge tools use
(weights and task-vector scales in (0, 1]: reading a fine-tune F1 as the "merge" of a
lambda < 1 merge M gives M a weight 1 / lambda > 1), then by the candidate child whose
removal leaves the cheapest spanning tree of the rest of the component, then by fewer
parents, then by the id, so the choice is deterministic. Some dependencies stay
ambiguous (M = B + (F1 - B) + (F2 - B) is also F2 = F1 + (M - F1) + (B - F1), with the
same coefficients and the same tree cost): their confidence says so (1 / the number of
equally good readings).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

import numpy as np
from scipy.sparse.csgraph import minimum_spanning_tree

from lineage.recovery.calibration import merge_confidence
from lineage.recovery.merge_cards import CardVotes
from lineage.recovery.merges import MergeFit
from lineage.recovery.model_stock import MODEL_STOCK_RULE
from lineage.recovery.slerp_recipe import SLERP_RULE


def spanning_cost(dist: np.ndarray, keep: list[int]) -> float:
    """Total weight of the minimum spanning tree over the `keep` rows of `dist`."""
    if len(keep) < 2:
        return 0.0
    sub = np.maximum(dist[np.ix_(keep, keep)], 1e-300)  # zero means "no edge" to scipy
    return float(minimum_spanning_tree(sub).sum())


COEFFICIENT_DIGITS = 3  # recipes state weights to a few decimals; a fit recovers them to
# ~1e-7, so 1.0000002 is 1.0, not "outside the range"
COST_TIE = 1e-6  # relative: spanning costs closer than float rounding are equal


def implausibility(fit: MergeFit) -> float:
    """How far the coefficients sit outside (0, 1], the range merge tools use."""
    outside = sum(max(c - 1.0, 0.0) + max(-c, 0.0) for c in fit.coefficients)
    return round(float(outside), COEFFICIENT_DIGITS)


SPARSE_RULE = "sparse"  # TIES/DARE fits: not linear relations, no mirror readings
# Fits whose recipe was checked (exact ratios, model stock's angle formula): the check
# holds for one reading only, so it has no mirrors and ranks above a range test.
RECIPE_RULES = (SPARSE_RULE, MODEL_STOCK_RULE, SLERP_RULE)
PER_MATRIX_RECIPES = (MODEL_STOCK_RULE, SLERP_RULE)


def mirror_readings(fit: MergeFit) -> list[MergeFit]:
    """Every reading of a linear fit's dependency, the fit's own first.

    child = base + sum_k c_k (p_k - base) is the relation sum_t a_t x_t = 0 with
    a_child = 1, a_base = -(1 - sum c), a_pk = -c_k (sum a = 0). Any member t with
    a_t != 0 can be read as the child: x_t = sum_{s != t} w_s x_s, w_s = -a_s / a_t,
    weights summing to 1. The member with a negative weight (task arithmetic's base
    enters with 1 - k * lambda < 0) is that reading's base; with none, it is a weighted
    average. Each fit finder proposes the reading it met first; enumerating them here
    lets the family, not the search order, choose (a near-copy of the base otherwise
    decides which reading is found at all)."""
    if fit.rule.startswith(RECIPE_RULES):
        return [fit]
    fit = as_average(fit)
    a = {fit.child: 1.0}
    if fit.base is not None:
        a[fit.base] = -(1.0 - float(sum(fit.coefficients)))
    for p, c in zip(fit.parents, fit.coefficients, strict=True):
        a[p] = a.get(p, 0.0) - c
    readings = [fit]
    for t, a_t in sorted(a.items()):
        if t == fit.child or abs(a_t) < 1e-9:
            continue
        w = {s: -a_s / a_t for s, a_s in a.items() if s != t}
        base = min(w, key=lambda s: (w[s], s)) if min(w.values()) < 0 else None
        parents = sorted(s for s in w if s != base)
        readings.append(replace(fit, child=t, base=base, parents=parents,
                                coefficients=[w[s] for s in parents]))
    return readings


def as_average(fit: MergeFit) -> MergeFit:
    """A fit whose base keeps a positive net weight (1 - sum c > 0, every c > 0) is a
    weighted average of the base and the parents: task arithmetic at lambda = 1/3 over
    two fine-tunes is (B + F1 + F2) / 3, the linear average of three models. Which
    member, if any, is a base is read from the tree (orient.average_base: the one the
    others branch off from), not from which model the fit happened to try as a base."""
    if fit.base is None or not fit.coefficients:
        return fit
    rest = 1.0 - float(sum(fit.coefficients))
    if round(rest, COEFFICIENT_DIGITS) <= 0.0 or min(fit.coefficients) <= 0.0:
        return fit
    order = sorted([*fit.parents, fit.base])
    weight = dict(zip(fit.parents, fit.coefficients, strict=True)) | {fit.base: rest}
    return replace(fit, base=None, parents=order, coefficients=[weight[p] for p in order])


def choose_explanations(fits: list[MergeFit], dist: np.ndarray, ids: list[str],
                        cards: CardVotes | None = None) -> list[tuple[MergeFit, float, int]]:
    """(the fit kept per dependency, its margin over the runner-up: relative spanning
    cost, inf when no other reading is as plausible, and how many readings tie).
    `cards`: the group's claims and their reliability, which decide among readings as
    plausible as the weights' choice (merge_cards.py); the fit then carries its
    posterior."""
    chosen: list[tuple[MergeFit, float, int]] = []
    taken: set[int] = set()
    # Fallbacks (another accepted base of a sparse merge) only for a child whose first
    # readings were all refused: as contradicting a kept merge (_mutual).
    for batch in ([f for f in fits if not f.fallback], [f for f in fits if f.fallback]):
        _choose(_by_dependency(batch), dist, ids, cards, chosen, taken)
    return chosen


def _by_dependency(fits: list[MergeFit]) -> dict[frozenset, list[MergeFit]]:
    """Every reading of each fit, grouped by the dependency (its members) it reads."""
    by_dependency: dict[frozenset, list[MergeFit]] = defaultdict(list)
    # A recipe-checked fit first: it is one reading of its dependency, and a mirror of
    # another fit naming the same child must not take its place.
    for fit in sorted(fits, key=lambda f: not f.rule.startswith(RECIPE_RULES)):
        known = {f.child for f in by_dependency[fit.members]}
        for reading in mirror_readings(fit):
            if reading.child not in known:
                by_dependency[fit.members].append(reading)
                known.add(reading.child)
    return by_dependency


def _choose(by_dependency: dict[frozenset, list[MergeFit]], dist: np.ndarray,
            ids: list[str], cards: CardVotes | None,
            chosen: list[tuple[MergeFit, float, int]], taken: set[int]) -> None:
    """Keep the likeliest reading of each dependency (appended to `chosen`, its child to
    `taken`): those a model stock recipe reads first, then smallest first."""
    # A dependency model stock's checked recipe reads comes first: its reading holds
    # for one member only, while a per-matrix reading of a smaller dependency that
    # shares a model is one free weight per matrix (a model stock M over B, with a
    # linear merge L of the same fine-tunes: {B, M, L} also reads B as the "merge" of
    # M and L). Sparse readings keep their place by size: the acceptance test of a
    # sparse merge is a share of coordinates, not a recipe for every weight.
    for members in sorted(by_dependency, key=lambda m: (
            not any(f.rule in PER_MATRIX_RECIPES for f in by_dependency[m]),
            len(m), sorted(m))):
        candidates = [f for f in by_dependency[members] if f.child not in taken]
        if not candidates:
            continue
        ranked = sorted(candidates, key=lambda f: _score(f, dist, taken, ids))
        scores = [_score(f, dist, taken, ids) for f in ranked]
        rivals = [s for s in scores[1:] if s[0] <= scores[0][0]]  # as plausible
        margin, ties = np.inf, 1
        if rivals:
            c1 = scores[0][1]
            margin = min((s[1] - c1) / max(c1, 1e-300) for s in rivals)
            ties += sum(s[1] <= c1 * (1.0 + COST_TIE) for s in rivals)
        best = ranked[0]
        if cards is not None and rivals:
            decided = cards.choose(ranked[:1 + len(rivals)], merge_confidence(margin, ties),
                                   ids)
            if decided is not None:
                best = replace(ranked[decided[0]], card_posterior=decided[1])
        if _mutual(best, [c for c, _, _ in chosen]):
            continue
        chosen.append((best, float(margin), ties))
        taken.add(best.child)


def _score(fit: MergeFit, dist: np.ndarray, taken: set[int], ids: list[str]) -> tuple:
    rest = [i for i in range(dist.shape[0]) if i != fit.child and i not in taken]
    plausible = (0.0, 0.0) if fit.rule.startswith(RECIPE_RULES) else (1.0, implausibility(fit))
    return (plausible, spanning_cost(dist, rest), len(fit.parents), ids[fit.child])


def _mutual(fit: MergeFit, kept: list[MergeFit]) -> bool:
    """A kept merge that uses this fit's child while this fit uses the kept child: the
    two explanations contradict each other (a cycle)."""
    for k in kept:
        if fit.child in k.members - {k.child} and k.child in fit.members - {fit.child}:
            return True
    return False
