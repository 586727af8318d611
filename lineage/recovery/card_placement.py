"""Cards decide between parents the weights cannot tell apart.

A model that barely moved from its parent (a few small steps) sits on it: for any
third model c, its distances to the two differ by at most the short edge between them.
Which of the two c hangs from is then decided by how c's own training drifted, not by
descent (siblings that share a task family drift alike and look nearer the near-copy).
No distance or cosine test separates the readings (README, "What is still lost"), but a
card that names one of the two can:

  the placed tree has c - h - ... - q (h c's neighbour on the path to q) and c's card
  names q as its base. The weights favour h by the margin m = 1 - d(h, c) / d(q, c),
  which the placement calibration turns into P_w = P(h is right | m)
  (calibration.placement_probability). If the card is honest (probability rho) c hangs
  from q; if it lies, h stands (the lie taken to name q for certain, which favours
  the weights). So the odds for q are
  rho (1 - P_w) / ((1 - rho) P_w), and c moves to q when they exceed 1 (the edge c - h
  is cut and c - q joined: q lies on h's side, so the result is a tree); the moved
  edge's placement probability is that posterior. A clear placement (a margin of 0.3
  gives P_w 0.91) needs a card more reliable than 0.91 to move; two near-equal
  candidates (P_w 1/2) follow any card more often right than wrong. How many tree steps
  separate c from q does not enter: where most children barely moved, the siblings'
  drift hangs them under one another, and an honest card then names a model two,
  three or four steps away yet as near as h (1007/14, 1008/5: a near-copy of the root
  became the hub of its siblings, whose cards all name the root).

rho is read from the catalog, from the claims the weights can check in every
architecture group (card_checks, CardChecks.reliability). Low-rank (LoRA) edges are
never moved: their
ranks add along a path, which places them exactly. Large components (sparse candidate
distances) keep the weights' tree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from lineage.recovery.calibration import placement_probability
from lineage.recovery.component import Component
from lineage.recovery.inputs import CardEdge
from lineage.recovery.rooting import Tree

Claims = list[tuple[int, int]]  # (parent, child) node indices of one component


def card_claims(comp: Component, cards: Sequence[CardEdge]) -> Claims:
    """The card claims about one component's tree nodes, sorted and unique (merges,
    adapters and models of other components left out)."""
    index = {m: i for i, m in enumerate(comp.ids)}
    return sorted({(index[c.parent], index[c.child]) for c in cards
                   if c.parent in index and c.child in index and c.parent != c.child})


CLEAR = 0.9  # a placement the weights call confident (the bar for confident edges)


@dataclass(frozen=True)
class CardChecks:
    """Claims the weights can check: how many named the tree neighbour (honest) and how
    many named a model the weights rule out (lies)."""

    honest: int = 0
    lies: int = 0

    def __add__(self, other: CardChecks) -> CardChecks:
        return CardChecks(self.honest + other.honest, self.lies + other.lies)

    def __sub__(self, other: CardChecks) -> CardChecks:
        return CardChecks(self.honest - other.honest, self.lies - other.lies)

    @property
    def reliability(self) -> float:
        """rho by Laplace's rule: a catalog with few checkable claims stays near 1/2.
        Summed over the catalog's groups (recover._pool_card_checks): card habits belong
        to the people who write cards, not to an architecture, so the claims of every
        group are one sample; pooling matters where one group's weights check few claims
        (a family of barely-moved children), which would otherwise leave rho at 1/2 and
        its cards unable to move anything."""
        return (self.honest + 1.0) / (self.honest + self.lies + 2.0)


NO_CHECKS = CardChecks()


def card_checks(claims: Sequence[Claims], trees: Sequence[Tree],
                dists: Sequence[np.ndarray | sparse.spmatrix],
                lowranks: Sequence[np.ndarray]) -> CardChecks:
    """The claims of one architecture group the weights can check. A claim naming the
    child's tree neighbour is honest. One naming another model q is a lie where the
    weights rule q out: the child's tree neighbour h on the way to q holds it with the
    placement calibration's P_w >= CLEAR over q, or either pair is low-rank (ranks
    place LoRA edges exactly). Every other claim is left out: the weights cannot tell h
    from q there. Counting by tree steps alone (three or more: a lie) read honest cards
    as lies wherever the weights had scrambled a family: when most children barely
    moved, the siblings' drift hangs them under one another, an honest claim names a
    model two, three or four steps away yet as near as the placed neighbour, and rho
    fell below what lets any card move (1007/15: 11 of 12 cards honest, none followed).
    Counting claims the weights are unsure of either way would make rho echo the
    weights exactly where the cards are to decide. Large components (sparse distances)
    keep the step count."""
    honest = lies = 0
    for claim, tree, dist, lowrank in zip(claims, trees, dists, lowranks, strict=True):
        for q, c in claim:
            if q in tree.adj[c]:
                honest += 1
            elif _ruled_out(tree, dist, lowrank, q, c):
                lies += 1
    return CardChecks(honest, lies)


def _ruled_out(tree: Tree, dist: np.ndarray | sparse.spmatrix, lowrank: np.ndarray,
               q: int, c: int) -> bool:
    """The weights rule out q as c's parent (card_checks)."""
    if sparse.issparse(dist):
        return _between(tree, q, c) is None
    h = int(tree.parents(q)[c])  # c's neighbour on the tree path to q
    if h < 0:
        return False
    if lowrank[h, c] or lowrank[q, c]:
        return True
    return weights_probability(dist, q, h, c) >= CLEAR


def _between(tree: Tree, q: int, c: int) -> int | None:
    """h when the tree reads c - h - q (q two steps from c), else None."""
    toward = tree.parents(q)  # rooted at q: each node's next step towards q
    h = int(toward[c])
    if h < 0 or h == q or int(toward[h]) != q:
        return None
    return h


def follow_cards(comp: Component, tree: Tree, claims: Claims, rho: float
                 ) -> tuple[Tree, dict[tuple[int, int], float]]:
    """The tree with every edge c - h moved to the card's parent q where the card's
    odds beat the weights' (module docstring), and per (q, c) pair a card decided its
    posterior. One pass, in claim order: a move is made only while q is not yet c's
    neighbour."""
    decided: dict[tuple[int, int], float] = {}
    for q, c in claims:
        if q in tree.adj[c]:
            continue
        h = _across(comp, tree, q, c)
        if h is None:
            continue
        posterior = float(_posterior(weights_probability(comp.raw_dist, q, h, c), rho))
        if posterior <= 0.5:
            continue
        edges = set(tree.edges) - {(min(c, h), max(c, h))} | {(min(c, q), max(c, q))}
        tree = Tree(tree.n, sorted(edges))
        decided[(q, c)] = posterior
    return tree, decided


def weights_probability(dist: np.ndarray, q: int, h: int, c: int) -> float:
    """P_w: the placement calibration's P(h is c's parent) at h's margin over q."""
    margin = max(0.0, 1.0 - float(dist[h, c]) / max(float(dist[q, c]), 1e-300))
    return placement_probability(margin)


def _posterior(p_w: np.ndarray | float, rho: float) -> np.ndarray:
    """P(c hangs from q | the card names q, the weights prefer h with P_w)."""
    odds = rho * (1.0 - np.asarray(p_w))
    return odds / np.maximum(odds + (1.0 - rho) * np.asarray(p_w), 1e-300)


def _across(comp: Component, tree: Tree, q: int, c: int) -> int | None:
    """h, c's neighbour on the placed tree's path to q, when q is not c's neighbour
    and neither pair is low-rank (ranks place LoRA edges exactly) in a dense component,
    else None."""
    if sparse.issparse(comp.raw_dist):
        return None
    h = int(tree.parents(q)[c])
    if h < 0 or h == q or comp.lowrank[h, c] or comp.lowrank[q, c]:
        return None
    return h
