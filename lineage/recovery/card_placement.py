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
  edge's placement probability is that posterior, up to calibration.CARD_CAP. A clear
  placement (a margin of 0.3 gives P_w 0.91) needs a card more reliable than 0.91 to
  move; two near-equal candidates (P_w 1/2) follow any card more often right than
  wrong. How many tree steps separate c from q does not enter: where most children
  barely moved, the siblings' drift hangs them under one another, and an honest card
  then names a model two, three or four steps away yet as near as h (1007/14, 1008/5:
  a near-copy of the root became the hub of its siblings, whose cards all name the
  root).

rho is read from the catalog, from the claims the weights can check in every
architecture group (card_checks, CardChecks.reliability). Low-rank (LoRA) edges are
never moved: their
ranks add along a path, which places them exactly. Large components (sparse candidate
distances) keep the weights' tree.
"""

from __future__ import annotations

import math
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
                lowranks: Sequence[np.ndarray], steps: StepCosines | None = None,
                root_posteriors: Sequence[np.ndarray | None] | None = None) -> CardChecks:
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
    keep the step count. `root_posteriors`: per tree, the weights' posterior over its
    roots (orientation_above), or None."""
    honest = lies = 0
    posteriors = root_posteriors if root_posteriors is not None else [None] * len(trees)
    for claim, tree, dist, lowrank, post in zip(claims, trees, dists, lowranks, posteriors,
                                                strict=True):
        for q, c in claim:
            if q in tree.adj[c]:
                honest += 1
            elif _ruled_out(tree, dist, lowrank, q, c, steps, post):
                lies += 1
    return CardChecks(honest, lies)


def _ruled_out(tree: Tree, dist: np.ndarray | sparse.spmatrix, lowrank: np.ndarray,
               q: int, c: int, steps: StepCosines | None,
               root_posterior: np.ndarray | None = None) -> bool:
    """The weights rule out q as c's parent (card_checks)."""
    if sparse.issparse(dist):
        return _between(tree, q, c) is None
    h = int(tree.parents(q)[c])  # c's neighbour on the tree path to q
    if h < 0:
        return False
    if lowrank[h, c] or lowrank[q, c]:
        return True
    above = orientation_above(tree, root_posterior, q, h, c)
    return weights_probability(dist, q, h, c, steps, above) >= CLEAR


def _between(tree: Tree, q: int, c: int) -> int | None:
    """h when the tree reads c - h - q (q two steps from c), else None."""
    toward = tree.parents(q)  # rooted at q: each node's next step towards q
    h = int(toward[c])
    if h < 0 or h == q or int(toward[h]) != q:
        return None
    return h


def follow_cards(comp: Component, tree: Tree, claims: Claims, rho: float,
                 steps: StepCosines | None = None, root_posterior: np.ndarray | None = None,
                 ) -> tuple[Tree, dict[tuple[int, int], float]]:
    """The tree with every edge c - h moved to the card's parent q where the card's
    odds beat the weights' (module docstring), and per (q, c) pair a card decided its
    posterior. One pass, in claim order: a move is made only while q is not yet c's
    neighbour. `root_posterior`: the weights' posterior over the placed tree's roots,
    which says which way each claim's path runs (orientation_above)."""
    decided: dict[tuple[int, int], float] = {}
    for q, c in claims:
        if q in tree.adj[c]:
            continue
        h = _across(comp, tree, q, c)
        if h is None:
            continue
        above = orientation_above(tree, root_posterior, q, h, c)
        p_w = weights_probability(comp.raw_dist, q, h, c, steps, above)
        posterior = float(_posterior(p_w, rho))  # reported capped (calibration.CARD_CAP)
        if posterior <= 0.5:
            continue
        edges = set(tree.edges) - {(min(c, h), max(c, h))} | {(min(c, q), max(c, q))}
        tree = Tree(tree.n, sorted(edges))
        decided[(q, c)] = posterior
    return tree, decided


def weights_probability(dist: np.ndarray, q: int, h: int, c: int,
                        steps: StepCosines | None = None, above: float = 0.0) -> float:
    """P_w: how sure the weights are that c hangs from h rather than from q: the
    placement calibration's P(h is c's parent) at h's margin over q, and, with the
    catalog's step cosines, no more than the triangle's two readings allow
    (triangle_probability). Each reading is blind where the other sees: the margin
    reads lengths only, and a near-copy h that captured its sibling c is nearer c than
    their parent q is (margins of 0.3 and more: P_w 0.9, right on such claims a
    fraction of the time, README "Recovery accuracy"); the triangle reads the angle
    only, and where a captured family inflates the chain spread it can call a chain
    what the distances call a tie. The weights hold against a card only as far as both
    readings do. `above`: P(h lies above q), which decides what the two readings
    are (triangle_probability). Without step cosines (too few paths to read them
    from), the margin."""
    margin = max(0.0, 1.0 - float(dist[h, c]) / max(float(dist[q, c]), 1e-300))
    p_w = placement_probability(margin)
    if steps is None:
        return p_w
    p_t = triangle_probability(float(dist[q, h]), float(dist[q, c]), float(dist[h, c]), steps,
                               above)
    return p_w if p_t is None else min(p_w, p_t)


@dataclass(frozen=True)
class StepCosines:
    """How a catalog's fine-tuning steps meet, read from its placed trees
    (step_cosines): consecutive steps at cosines ~ N(0, chain_sd); the steps of two
    siblings from their parent at ~ N(sibling_mean, sibling_sd), or anywhere in [0, 1]
    where the trees hold too few sibling pairs to say (both None)."""

    chain_sd: float
    sibling_mean: float | None = None
    sibling_sd: float | None = None

    def chain_density(self, y: float) -> float:
        return _normal(y, 0.0, self.chain_sd)

    def sibling_density(self, x: float) -> float:
        if self.sibling_mean is not None and self.sibling_sd is not None:
            return _normal(x, self.sibling_mean, self.sibling_sd)
        # nothing says how much two tasks share: flat on [0, 1], below 0 only as far
        # as the chain's own noise reaches
        return 1.0 if x >= 0.0 else math.exp(-0.5 * (x / self.chain_sd) ** 2)


def _normal(x: float, mean: float, sd: float) -> float:
    return math.exp(-0.5 * ((x - mean) / sd) ** 2) / (sd * math.sqrt(2.0 * math.pi))


def triangle_probability(a: float, b: float, e: float, steps: StepCosines,
                         above: float = 0.0) -> float | None:
    """P(c hangs from h, not from q) from the triangle of placement distances (chords
    between unit-normalised weights, distance.placement_distance) d(q, h) = a,
    d(q, c) = b, d(h, c) = e, weighing the two readings a card and the weights
    disagree on, each by how this catalog's steps meet (StepCosines). Which two
    readings those are depends on which way the path c - h - ... - q runs, so both
    orientations are weighed, `above` = P(h lies above q) (orientation_above):

    - q above h (probability 1 - above). Weights, a chain q ... h -> c: c's own step
      is independent of the steps that led to h, its cosine with the step into h
      (step_cosine) a consecutive pair's. Card, siblings q -> c beside q -> ... h:
      the steps q -> c and q -> h share whatever two trainings from one parent share,
      their cosine a sibling pair's.
    - h above q (probability `above`: q is one of h's other children, or below one).
      Weights, siblings: h's steps to q and to c at a sibling cosine. Card, a chain
      h -> q -> c: c's step out of q at a consecutive cosine with the step into q.
      Read with the first orientation alone, a lie naming c's sibling under their
      common parent h looked like a bent chain against a sibling fit, and won
      (the spent held-out draws 1013-1022: 21 of 25 card moves the weights had right
      had h at the true root, against 10 of 264 moves the card had right).

    Equal priors on the readings. This is not a margin: a near-copy h that captured
    its sibling c sits where both readings fit, and the probability then stays near
    1/2, where the margin curve said 0.8-0.95 and was right on such claims a fraction
    of the time (README, "Recovery accuracy"). Where the catalog's consecutive steps
    are sharply orthogonal or its siblings share little, the triangle tells the
    readings apart and a card cannot move c against it. None for a degenerate
    triangle (a zero side)."""
    y = step_cosine(a, e, b)  # steps into h (from q) and out of h (to c)
    x = step_cosine(a, b, e)  # steps into q (from h) and out of q (to c)
    if y is None or x is None:
        return None
    below = 1.0 - above
    weights = below * steps.chain_density(y) + above * steps.sibling_density(-y)
    card = below * steps.sibling_density(-x) + above * steps.chain_density(x)
    if weights + card <= 0.0:
        return None
    return weights / (weights + card)


def orientation_above(tree: Tree, root_posterior: np.ndarray | None, q: int, h: int,
                      c: int) -> float:
    """P(h lies above q) on the path c - h - ... - q, from a posterior over roots of
    the placed tree: the mass of roots on h's side of both the branch towards q and
    the branch holding c, against those two sides. A root on c's side puts c above h,
    which neither reading of the claim allows, so it is left out. 0 (the q-above-h
    reading alone) without a posterior or where it holds no mass on either side."""
    if root_posterior is None:
        return 0.0
    toward = tree.parents(h)  # rooted at h: each node's next step towards h
    branch = np.arange(tree.n)
    for v in tree.order(h)[1:]:  # each node's neighbour of h on its way there
        if toward[v] != h:
            branch[v] = branch[toward[v]]
    q_side = float(root_posterior[branch == branch[q]].sum())
    c_side = float(root_posterior[branch == c].sum())
    h_side = max(0.0, 1.0 - q_side - c_side)
    total = q_side + h_side
    return h_side / total if total > 1e-12 else 0.0


def step_cosine(into: float, out: float, across: float) -> float | None:
    """The cosine between a step into a model (chord `into`) and a step out of it
    (chord `out`), the two ends `across` apart: minus the cosine of the angle at the
    middle model, by the spherical law of cosines on the unit sphere the placement
    distance measures chords on (cos t = 1 - chord^2 / 2). Flat triangles would do for
    short steps, (across^2 - into^2 - out^2) / (2 into out), but read a chain of two
    orthogonal steps of 30 % as bending back by -0.05 (the sphere's curvature), as much
    as a trained tree's whole spread. None for a degenerate triangle."""
    y, ok = _bends(np.float64(into), np.float64(out), np.float64(across))
    return float(y) if ok else None


def _bends(into: np.ndarray, out: np.ndarray, across: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """step_cosine over arrays of chords: (the cosines, where the triangle is not
    degenerate; 0 elsewhere)."""
    ci, co, ca = (1.0 - d * d / 2.0 for d in (into, out, across))
    sines = np.sqrt(np.maximum(1.0 - ci * ci, 0.0)) * np.sqrt(np.maximum(1.0 - co * co, 0.0))
    ok = sines > 1e-12
    return -np.divide(ca - ci * co, sines, out=np.zeros_like(sines), where=ok), ok


# Below this many sibling pairs the sibling cosines are taken as anywhere in [0, 1]. A
# mean and a deviation by moments need two pairs; three, so that no single stray pair
# sets the deviation alone. Chosen from that counting, not fitted to a zoo; checked with
# the rest of the rule on the fresh held-out draws 1014-1016 (README).
MIN_SIBLING_PAIRS = 3


def step_cosines(trees: Sequence[Tree],
                 dists: Sequence[np.ndarray | sparse.spmatrix]) -> StepCosines | None:
    """How consecutive and sibling steps meet, from the placed trees of one
    architecture group. Every node h with tree neighbours x and c gives y, the cosine
    of the steps x -> h and h -> c (step_cosine). Where x -> h -> c is a chain, y is a
    consecutive pair's, centred on 0 (independent trainings); where x and c are both
    h's children, y is minus their sibling cosine, which is >= 0 (what two trainings
    from one parent share). The undirected tree does not say which, but the positive
    half holds chains alone: chain_sd^2 = mean(y^2 | y > 0) (a half-normal), and as many
    chain cosines again lie below 0. What the negative half holds beyond them (its sums
    less the chain half's expected n sd sqrt(2/pi) and n sd^2) are the sibling pairs:
    their mean and deviation by moments, where at least MIN_SIBLING_PAIRS remain.
    None with fewer than two positive cosines: the caller falls back to the margin
    curve. Sparse components are skipped."""
    ys: list[np.ndarray] = []
    for tree, dist in zip(trees, dists, strict=True):
        if not sparse.issparse(dist):
            ys.append(_path_cosines(tree, np.asarray(dist, dtype=np.float64)))
    y = np.concatenate(ys) if ys else np.zeros(0)
    positive, negative = y[y > 0.0], -y[y <= 0.0]
    if len(positive) < 2:
        return None
    sd = math.sqrt(float(np.mean(positive**2)))
    pairs = len(negative) - len(positive)
    if pairs < MIN_SIBLING_PAIRS:
        return StepCosines(sd)
    chain_sum = len(positive) * sd * math.sqrt(2.0 / math.pi)
    mean = (float(negative.sum()) - chain_sum) / pairs
    second = (float((negative**2).sum()) - len(positive) * sd * sd) / pairs
    var = second - mean * mean
    if mean <= 0.0 or var <= 0.0:
        return StepCosines(sd)
    return StepCosines(sd, mean, math.sqrt(var))


def _path_cosines(tree: Tree, dist: np.ndarray) -> np.ndarray:
    """step_cosine at every node h over each pair of its tree neighbours (x, c), x
    before c in h's neighbour list, node by node; degenerate triangles left out.
    Vectorised per node: a hub of a thousand children has half a million pairs."""
    out = [_node_cosines(dist, h, np.asarray(tree.adj[h], dtype=np.int64))
           for h in range(tree.n) if len(tree.adj[h]) >= 2]
    return np.concatenate(out) if out else np.zeros(0)


def _node_cosines(dist: np.ndarray, h: int, nb: np.ndarray) -> np.ndarray:
    i, j = np.triu_indices(len(nb), 1)
    x, c = nb[i], nb[j]
    y, ok = _bends(dist[x, h], dist[h, c], dist[x, c])
    return y[ok]


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
