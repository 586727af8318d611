"""Choose the kurtosis sign per relation class (full / low-rank) for an architecture
group, then build each component's arborescence with it."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from lineage.recovery.arborescence import edge_costs, min_arborescence, tree_cost
from lineage.recovery.component import Component
from lineage.recovery.direction import SignDecision, sign_from_cards
from lineage.recovery.inputs import CardEdge

CLASSES = ("full", "lowrank")


def sign_matrix(comp: Component, signs: dict[str, int]) -> np.ndarray:
    return np.where(comp.lowrank, signs["lowrank"], signs["full"])


def card_votes(comps: Sequence[Component], cards: Sequence[CardEdge]) -> dict[str, list]:
    """Kurtosis votes of documented parent -> child pairs, per relation class."""
    votes: dict[str, list[float]] = {c: [] for c in CLASSES}
    for comp in comps:
        index = {m: i for i, m in enumerate(comp.ids)}
        for card in cards:
            p, c = index.get(card.parent), index.get(card.child)
            if p is not None and c is not None:
                cls = "lowrank" if comp.lowrank[p, c] else "full"
                votes[cls].append(float(comp.votes[p, c]))
    return votes


def decide_signs(
    comps: Sequence[Component], cards: Sequence[CardEdge], lam: float
) -> dict[str, SignDecision]:
    """Cards where they suffice; the rest by the cheapest arborescences over all
    components (in a branching tree only the true sign lets every edge agree)."""
    decided = {cls: sign_from_cards(v) for cls, v in card_votes(comps, cards).items()}
    open_classes = [c for c in CLASSES if decided[c] is None]
    if not open_classes:
        return decided  # type: ignore[return-value]
    totals = {}
    for combo in itertools.product((1, -1), repeat=len(open_classes)):
        signs = {c: d.sign for c, d in decided.items() if d is not None}
        signs.update(zip(open_classes, combo, strict=True))
        totals[combo] = sum(_cost(comp, signs, lam) for comp in comps)
    best = min(totals, key=lambda k: (totals[k], [-s for s in k]))
    worst = max(totals.values())
    margin = 0.0 if worst <= 0 else (worst - totals[best]) / worst
    for cls, sign in zip(open_classes, best, strict=True):
        decided[cls] = SignDecision(sign, "structure", len(comps), 0.5 + margin / 2)
    return decided  # type: ignore[return-value]


def _cost(comp: Component, signs: dict[str, int], lam: float) -> float:
    costs = edge_costs(comp.dist, comp.votes, sign_matrix(comp, signs), lam=lam)
    return tree_cost(costs, min_arborescence(costs))


def orient(comp: Component, signs: dict[str, int], lam: float) -> np.ndarray:
    """Parent index per tree node of the component (-1: root)."""
    return min_arborescence(edge_costs(comp.dist, comp.votes, sign_matrix(comp, signs), lam=lam))
