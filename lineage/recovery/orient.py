"""Place and orient every component: a spanning tree from distances, a root from the
direction signals (rooting.py), decided per tree with the architecture group as a prior.

Placement uses distances alone. Fine-tuning adds increments that are nearly orthogonal
to each other, so a model's distance to any non-neighbour in its tree is longer than
every edge on the path to it (squares add), and the minimum spanning tree is the
fine-tuning tree. Direction signals are kept out of placement: mixed into the edge cost
(MoTHer's D + lam * mean(D) * violation), a confidently wrong vote moves a grandchild
under the root. They only choose the root, where every edge's vote counts together.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import minimum_spanning_tree

from lineage.recovery.card_placement import (
    NO_CHECKS,
    CardChecks,
    Claims,
    StepCosines,
    card_checks,
    card_claims,
    follow_cards,
    step_cosines,
)
from lineage.recovery.component import Component
from lineage.recovery.direction import SIGNALS
from lineage.recovery.inputs import CardEdge
from lineage.recovery.merges import MergeFit
from lineage.recovery.placement import reattach_siblings
from lineage.recovery.root_cards import root_card_evidence
from lineage.recovery.rooting import Rooting, Slot, Tree, content_order, root_tree

ORIENT_RULE = "per-tree root posterior (signs integrated out, group prior)"


def spanning_tree(dist: np.ndarray) -> Tree:
    """The minimum spanning tree of a component (zero distances lifted: scipy reads a 0
    as "no edge"), edges as (smaller, larger) index pairs in a fixed order."""
    n = dist.shape[0]
    if n < 2:
        return Tree(n, [])
    if sparse.issparse(dist):  # candidate pairs only: a sparse spanning tree
        sym = ((dist + dist.T) / 2.0).tocsr()
        sym.data = np.maximum(sym.data, 1e-300)
        mst = minimum_spanning_tree(sym).tocoo()
    else:
        # as CSR (every entry kept): scipy's dense-input validation costs as much as the
        # spanning tree itself on a small component
        sym = sparse.csr_matrix(np.maximum((dist + dist.T) / 2.0, 1e-300))
        mst = minimum_spanning_tree(sym).tocoo()
    edges = sorted((min(int(u), int(v)), max(int(u), int(v)))
                   for u, v in zip(mst.row, mst.col, strict=True))
    return Tree(n, edges)


def placed_tree(comp: Component) -> Tree:
    """The spanning tree, with siblings a near-copy had captured given back to their
    parent (placement.reattach_siblings) where the component keeps its Gram matrix."""
    tree = spanning_tree(comp.dist)
    if comp.gram is None or tree.n < 3:
        return tree
    return Tree(tree.n, reattach_siblings(tree.edges, tree.n, comp.gram, comp.lowrank))


def signal_slots(comp: Component, tree: Tree, priors: dict[str, float]) -> list[Slot]:
    """One slot per signal: soft agreements of each edge read u -> v. Full and low-rank
    (LoRA) edges share a slot: a small tree has too few edges to give each relation
    class a sign of its own, and the sign follows the tree's init and recipe."""
    us = np.array([u for u, _ in tree.edges], dtype=np.int64)
    vs = np.array([v for _, v in tree.edges], dtype=np.int64)
    slots = []
    for signal in SIGNALS:
        if signal not in comp.votes:  # a large component votes on fewer signals
            continue
        votes = gather(comp.votes[signal], us, vs).astype(np.float64)
        ids = np.flatnonzero(votes != 0)
        slots.append(Slot(signal, ids.tolist(), (1.0 + votes[ids]) / 2.0,
                          priors.get(signal, 0.5)))
    return slots


def gather(matrix: np.ndarray | sparse.spmatrix, rows: np.ndarray, cols: np.ndarray
           ) -> np.ndarray:
    """matrix[rows[e], cols[e]] for every e, from a dense array or a sparse matrix (a
    component too large for dense [n, n] arrays keeps its candidate pairs only)."""
    if rows.size == 0:
        return np.zeros(0, dtype=matrix.dtype)
    if sparse.issparse(matrix):
        return np.asarray(matrix[rows, cols]).reshape(-1)
    return matrix[rows, cols]


def card_slot(comp: Component, tree: Tree, cards: Sequence[CardEdge]) -> Slot:
    """Documented edges as claims on one tree edge each: a card naming P as C's base
    says P is an ancestor of C, i.e. the first edge on the path from P towards C points
    away from P."""
    return ancestry_slot("cards", comp, tree, [(c.parent, c.child) for c in cards])


def merge_base_slot(comp: Component, tree: Tree) -> Slot:
    """A merge made against a base (task arithmetic, TIES, DARE, model stock) took its
    parents' task vectors from that base: the base is an ancestor of every parent."""
    claims = [(comp.all_ids[f.base], comp.all_ids[p]) for f in comp.merges
              if f.base is not None for p in f.parents]
    return ancestry_slot("merge bases", comp, tree, claims)


def ancestry_slot(name: str, comp: Component, tree: Tree,
                  claims_in: Sequence[tuple[str, str]]) -> Slot:
    """Claims "a is an ancestor of b" as votes on the first edge from a towards b."""
    index = {m: i for i, m in enumerate(comp.ids)}
    edge_of = {frozenset(e): k for k, e in enumerate(tree.edges)}
    claims: dict[int, list[float]] = defaultdict(list)
    for parent, child in claims_in:
        p, c = index.get(parent), index.get(child)
        if p is None or c is None or p == c:
            continue
        toward = tree.parents(c)  # rooted at the child: the next node from p towards c
        step = int(toward[p])
        if step < 0:
            continue
        e = edge_of[frozenset((p, step))]
        claims[e].append(1.0 if tree.edges[e] == (p, step) else 0.0)
    ids = sorted(claims)
    agree = np.array([float(np.mean(claims[e])) for e in ids])
    return Slot(name, ids, agree, 1.0, fixed=True)


def pooled_priors(signs: list[dict[str, float]], groups: list[str]) -> list[dict[str, float]]:
    """Per component, each slot's prior P(sign = +1): Laplace's rule of succession over
    the OTHER components of its architecture group, each counting its posterior.
    Group totals minus the component's own: linear in the number of components."""
    totals: dict[tuple[str, str], float] = defaultdict(float)
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for s, g in zip(signs, groups, strict=True):
        for name, value in s.items():
            totals[(g, name)] += value
            counts[(g, name)] += 1
    return [{name: (1.0 + totals[(g, name)] - value) / (1.0 + counts[(g, name)])
             for name, value in s.items()} for s, g in zip(signs, groups, strict=True)]


def average_base(fit: MergeFit, comp: Component, tree: Tree) -> MergeFit:
    """A weighted average (weights summing to 1) reads the same with any parent as the
    base; model stock and task arithmetic mix their base in this way. The parent the
    others branch off from, each in a branch of its own in the placed tree (so it lies
    on the path between every two of them), is that base, not a merged model. Read
    from the undirected tree, before direction, so the base then votes on direction."""
    if fit.base is not None or len(fit.parents) < 3:
        return fit
    odd = _odd_weight(fit)
    if odd is not None:
        return with_base(fit, odd)
    index = {m: i for i, m in enumerate(comp.ids)}
    nodes = {p: index[comp.all_ids[p]] for p in fit.parents if comp.all_ids[p] in index}
    bases = [p for p, x in nodes.items()
             if _separate_branches(tree, x, [y for q, y in nodes.items() if q != p])]
    if len(bases) != 1 or len(nodes) != len(fit.parents):
        return fit
    return with_base(fit, bases[0])


PER_MATRIX_RULE = "exact per-matrix"
WEIGHT_DIGITS = 3  # weights a per-matrix fit recovers to ~1e-7; equal means equal here


def _odd_weight(fit: MergeFit) -> int | None:
    """Model stock: per matrix, t * mean(fine-tunes) + (1 - t) * base, t varying by
    matrix (so only the per-matrix fit finds it). Its fine-tunes carry one identical
    weight in every matrix, so their mean weights are equal; the one parent whose
    weight differs from all the others' common weight is the base. A linear merge has
    constant weights and is found by the whole-model fit, never here."""
    if not fit.rule.startswith(PER_MATRIX_RULE):
        return None
    weights = [round(c, WEIGHT_DIGITS) for c in fit.coefficients]
    odd = [p for p, w in zip(fit.parents, weights, strict=True) if weights.count(w) == 1]
    if len(odd) == 1 and len(set(weights)) == 2:
        return odd[0]
    return None


def with_base(fit: MergeFit, base: int) -> MergeFit:
    """The fit with `base`, one of its parents, read as its base instead."""
    keep = [k for k, p in enumerate(fit.parents) if p != base]
    return replace(fit, base=base, parents=[fit.parents[k] for k in keep],
                   coefficients=[fit.coefficients[k] for k in keep])


def _separate_branches(tree: Tree, x: int, others: list[int]) -> bool:
    """Every node of `others` hangs off x through a different neighbour of x."""
    parents = tree.parents(x)
    branches = set()
    for y in others:
        while parents[y] != x:
            if parents[y] < 0:
                return False
            y = int(parents[y])
        branches.add(y)
    return len(branches) == len(others)


def orient_all(comps: Sequence[Component], cards: Sequence[CardEdge],
               elsewhere: CardChecks = NO_CHECKS) -> tuple[list[Rooting], dict]:
    """The rooting of every component, and a summary of the signs decided and of the
    cards checked (`elsewhere`: the checkable claims of the catalog's other groups,
    pooled into the card reliability)."""
    trees = [placed_tree(c) for c in comps]
    claims = [card_claims(c, cards) for c in comps]
    dists = [c.raw_dist for c in comps]
    steps = step_cosines(trees, dists) if any(claims) else None
    orders = [content_order(c.features.hashes) for c in comps]  # root ties, by content
    ways = [weights_root_posterior(c, t, order)
            if claim and not sparse.issparse(c.raw_dist) else None
            for c, t, claim, order in zip(comps, trees, claims, orders, strict=True)]
    checks = card_checks(claims, trees, dists, [c.lowrank for c in comps], steps, ways)
    rho = (checks + elsewhere).reliability
    trees = _follow_cards(comps, trees, claims, rho, steps, ways)
    for comp, tree in zip(comps, trees, strict=True):
        comp.merges = [average_base(f, comp, tree) for f in comp.merges]
    groups = [c.group for c in comps]
    roots = root_card_evidence(comps, cards, rho)
    first = [_root(c, t, {}, cards, e, o)
             for c, t, e, o in zip(comps, trees, roots, orders, strict=True)]
    priors = pooled_priors([r.sign_plus for r in first], groups)
    final = [_root(c, t, p, cards, e, o)
             for c, t, p, e, o in zip(comps, trees, priors, roots, orders, strict=True)]
    info = {"rule": ORIENT_RULE, "card_reliability": rho, "card_checks": checks,
            "step_cosines": steps,
            "card_claims": sum(len(c) for c in claims),
            "signs": {c.all_ids[0]: {k: round(v, 4) for k, v in r.sign_plus.items()}
                      for c, r in zip(comps, final, strict=True)}}
    return final, info


def weights_root_posterior(comp: Component, tree: Tree, tie_order: np.ndarray
                           ) -> np.ndarray:
    """The posterior over the placed tree's roots from the weights alone (direction
    signals, merge bases, the growth prior): which way a card claim's path runs
    (card_placement.orientation_above). The cards are left out, as they are what it
    is weighed against. `tie_order`: rooting.content_order of its models."""
    slots = signal_slots(comp, tree, {}) + [merge_base_slot(comp, tree)]
    return root_tree(tree, slots, tie_order=tie_order).posterior


def _follow_cards(comps: Sequence[Component], trees: list[Tree], claims: list[Claims],
                  rho: float, steps: StepCosines | None,
                  ways: Sequence[np.ndarray | None]) -> list[Tree]:
    """Each tree with the edges cards decide (card_placement.py) at card reliability
    rho; each decided pair's posterior kept on the component."""
    out = []
    for comp, tree, claim, way in zip(comps, trees, claims, ways, strict=True):
        tree, comp.card_placed = follow_cards(comp, tree, claim, rho, steps, way)
        out.append(tree)
    return out


def _root(comp: Component, tree: Tree, priors: dict[str, float],
          cards: Sequence[CardEdge], root_evidence: np.ndarray | None,
          tie_order: np.ndarray) -> Rooting:
    slots = signal_slots(comp, tree, priors) + [card_slot(comp, tree, cards),
                                                merge_base_slot(comp, tree)]
    return root_tree(tree, slots, root_evidence, tie_order)

