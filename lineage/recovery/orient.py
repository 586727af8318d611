"""Calibrate the direction signals and orient every component.

Per signal (kurtosis, norm, centrality) a sign per architecture group and relation class (full /
low-rank) from documented edges where they suffice (direction.sign_from_cards);
otherwise one sign per signal for the whole catalog, chosen by structure: the sign
whose arborescences are cheaper over the largest components (in a branching tree only
the true sign lets every edge agree). The signals' calibrated votes are then averaged,
weighted by the log-odds of how often each agrees with the orientation a first,
equal-weight pass finds (a coin-flip signal drops out), and each component gets its
minimum arborescence.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lineage.recovery.arborescence import edge_costs, min_arborescence, tree_cost
from lineage.recovery.component import Component
from lineage.recovery.direction import SIGNALS, SignDecision, sign_from_cards
from lineage.recovery.inputs import CardEdge

CLASSES = ("full", "lowrank")
MAX_SIGN_COMPONENTS = 64  # the structural sign vote looks at the largest components

Signs = dict[str, dict[str, SignDecision]]  # signal -> class -> decision


def class_of(comp: Component, p: int, c: int) -> str:
    return "lowrank" if comp.lowrank[p, c] else "full"


def card_signs(comps: Sequence[Component], cards: Sequence[CardEdge]) -> Signs:
    """Per signal and class, the documented edges' robust vote (None: too little)."""
    out: Signs = {}
    for signal in SIGNALS:
        votes: dict[str, list[float]] = {c: [] for c in CLASSES}
        for comp in comps:
            index = {m: i for i, m in enumerate(comp.ids)}
            for card in cards:
                p, c = index.get(card.parent), index.get(card.child)
                if p is not None and c is not None:
                    votes[class_of(comp, p, c)].append(float(comp.votes[signal][p, c]))
        out[signal] = {cls: sign_from_cards(v) for cls, v in votes.items()}
    return out


def structural_signs(
    comps: Sequence[Component], by_cards: dict[str, Signs], lam: float
) -> dict[str, SignDecision]:
    """Per signal, the sign of the slots (group, class) cards left open: the one whose
    arborescences cost less overall, card-decided slots held at their sign."""
    sample = sorted(comps, key=lambda c: -c.features.n)[:MAX_SIGN_COMPONENTS]
    out = {}
    for signal in SIGNALS:
        cost = {}
        for s in (1, -1):
            fallback = SignDecision(s, "structure", 0, 1.0)
            cost[s] = 0.0
            for comp in sample:
                slots = {cls: by_cards[comp.group][signal][cls] or fallback for cls in CLASSES}
                cost[s] += _tree(comp, signed_votes(comp, slots, signal), lam)[1]
        sign = 1 if cost[1] <= cost[-1] else -1
        gap = abs(cost[1] - cost[-1]) / max(cost[1], cost[-1], 1e-300)
        out[signal] = SignDecision(sign, "structure", len(sample), 0.5 + min(gap * 10, 0.5))
    return out


def _tree(comp: Component, votes: np.ndarray, lam: float) -> tuple[np.ndarray, float]:
    costs = edge_costs(comp.dist, votes, 1, lam=lam)
    parents = min_arborescence(costs)
    return parents, tree_cost(costs, parents)


def signed_votes(comp: Component, signs: dict[str, SignDecision], signal: str) -> np.ndarray:
    """[n, n] the signal's votes turned so that > 0 favours 'i is the parent of j'."""
    s = np.where(comp.lowrank, signs["lowrank"].sign, signs["full"].sign)
    return s * comp.votes[signal]


def combine(comp: Component, signs: dict[str, dict[str, SignDecision]],
            weights: dict[str, float]) -> np.ndarray:
    total = sum(weights[s] * signed_votes(comp, signs[s], s) for s in SIGNALS)
    norm = sum(weights.values())
    return total / norm if norm > 0 else np.zeros_like(comp.dist)


def signal_weights(comps, signs, parents_list) -> dict[str, float]:
    """Per signal, the log-odds of its agreement a with the oriented edges (Laplace-
    smoothed), floored at 0: independent voters combine by log-odds, so a signal that
    is right 999 times in 1000 outvotes one right 97 times in 100 where they conflict
    (a lopsided tree's root is not its most central model)."""
    weights = {}
    for signal in SIGNALS:
        agree = total = 0
        for comp, parents in zip(comps, parents_list, strict=True):
            v = signed_votes(comp, signs[comp.group][signal], signal)
            for c, p in enumerate(parents):
                if p >= 0 and v[p, c] != 0:
                    agree += v[p, c] > 0
                    total += 1
        a = (agree + 1.0) / (total + 2.0)
        weights[signal] = max(0.0, float(np.log(a / (1.0 - a))))
    return weights


def orient_all(
    comps: Sequence[Component], cards: Sequence[CardEdge], lam: float
) -> tuple[list[np.ndarray], list[np.ndarray], dict]:
    """(parents per component, combined votes per component, how signs were decided)."""
    groups = sorted({c.group for c in comps})
    by_cards = {g: card_signs([c for c in comps if c.group == g], cards) for g in groups}
    structure = structural_signs(comps, by_cards, lam)
    signs: dict[str, Signs] = {
        g: {s: {cls: by_cards[g][s][cls] or structure[s] for cls in CLASSES} for s in SIGNALS}
        for g in groups
    }
    equal = dict.fromkeys(SIGNALS, 1.0)
    first = [_tree(c, combine(c, signs[c.group], equal), lam)[0] for c in comps]
    weights = signal_weights(comps, signs, first)
    if sum(weights.values()) == 0:
        weights = equal
    votes = [combine(c, signs[c.group], weights) for c in comps]
    parents = [_tree(c, v, lam)[0] for c, v in zip(comps, votes, strict=True)]
    info = {"weights": weights,
            "signs": {g: {s: {cls: d.to_dict() for cls, d in by.items()}
                          for s, by in signs[g].items()} for g in groups}}
    return parents, votes, info
