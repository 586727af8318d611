"""Orient a placed tree: choose its root from the direction signals, per tree.

Once the undirected tree is placed, an orientation is a choice of root: every edge
then points away from it. Each direction signal (kurtosis drift, norm growth; per
relation class: full or low-rank differences) votes on every edge, but
neither the sign it follows nor how reliable it is is known: two trees of one
architecture trained from different inits drift in opposite directions. So both are
integrated out, per tree:

  signal s with sign sigma and reliability p in [1/2, 1] (uniform): for root r, k_s(r)
  of the m_s votes agree with sigma; P(votes | r) = sum_sigma pi_s(sigma) * J(k, m),
  J(k, m) = 2 * integral_{1/2}^{1} p^k (1 - p)^(m - k) dp,
  P(r | votes) proportional to P(r) prod_s P(votes_s | r), P(r) the number of ways the
  tree could have grown from r (log_histories: a prior from how families grow, read
  from the tree's shape alone).

In a branching tree only the true root with the true sign lets every vote agree, so the
posterior concentrates there; in a chain it cannot (root at either end with the sign
flipped reads the same), and the prior pi_s decides: the other trees of the
architecture group, pooled by Laplace's rule of succession (a prior at most, never the
decision of a tree whose own votes are clear). Documented edges (cards) are one more
signal whose sign is fixed (a card names a parent, never a child); a card naming a
non-adjacent model says the root lies on its side of the first edge towards the child.
Votes are soft counts: a vote v in [-1, 1] (the share of changed matrices agreeing,
signed) counts (1 + v) / 2 agreements.
The confidence of an edge's direction is the posterior mass of roots on its parent's
side.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.special import betainc, betaln, logsumexp

GRID = 2048  # midpoint rule for J over p in [1/2, 1]
_P = 0.5 + (np.arange(GRID) + 0.5) / (2 * GRID)
_LOG_P, _LOG_Q = np.log(_P), np.log1p(-_P)


def log_j(k: np.ndarray, m: float) -> np.ndarray:
    """log J(k, m) for soft counts k (array) of m votes.

    Closed form: J = 2 B(k+1, m-k+1) I_{1/2}(m-k+1, k+1) (substitute q = 1 - p), one
    special-function call per element. Where the incomplete beta underflows (below
    1e-300 of the whole Beta integral: large m, most votes against), the integrand
    p^k (1 - p)^(m-k) falls from its maximum at p = 1/2 at rate 2(m - 2k), so the
    integral is 0.5^m / (2(m - 2k)) to a relative (m - 2k)^-2 m: such a root carries
    less than 1e-300 of the posterior either way. The midpoint rule is kept for any
    other non-finite case, in blocks (never an [n, GRID] array for a large tree)."""
    k = np.clip(np.asarray(k, dtype=np.float64), 0.0, m)
    a, b = m - k + 1.0, k + 1.0
    with np.errstate(divide="ignore"):
        out = np.log(2.0) + betaln(a, b) + np.log(betainc(a, b, 0.5))
    tail = ~np.isfinite(out) & (m - 2.0 * k > 0)
    out[tail] = np.log(2.0) + m * np.log(0.5) - np.log(2.0 * (m - 2.0 * k[tail]))
    bad = np.flatnonzero(~np.isfinite(out))
    flat = out.reshape(-1)
    for start in range(0, bad.size, LOG_J_BLOCK):
        idx = bad[start:start + LOG_J_BLOCK]
        flat[idx] = _log_j_midpoint(k.reshape(-1)[idx], m)
    return out


LOG_J_BLOCK = 64  # rows of [rows, GRID] float64: 1 MiB


def _log_j_midpoint(k: np.ndarray, m: float) -> np.ndarray:
    k = k[..., None]
    return logsumexp(k * _LOG_P + (m - k) * _LOG_Q, axis=-1) + np.log(2.0 / (2 * GRID))


@dataclass
class Tree:
    """An undirected tree over nodes 0..n-1 with adjacency lists."""

    n: int
    edges: list[tuple[int, int]]
    adj: list[list[int]] = field(init=False)
    _rooted: dict[int, tuple[np.ndarray, list[int]]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.adj = [[] for _ in range(self.n)]
        for u, v in self.edges:
            self.adj[u].append(v)
            self.adj[v].append(u)
        self._rooted = {}

    def parents(self, root: int) -> np.ndarray:
        """Parent of every node when rooted at `root` (-1 for the root). Read-only and
        cached: every slot of a tree reroots from the same node."""
        return self._bfs(root)[0]

    def order(self, root: int) -> list[int]:
        """Nodes in breadth-first order from `root` (parents before children)."""
        return self._bfs(root)[1]

    def _bfs(self, root: int) -> tuple[np.ndarray, list[int]]:
        if root not in self._rooted:
            parent = np.full(self.n, -1, dtype=np.int64)
            seen = np.zeros(self.n, dtype=bool)
            seen[root] = True
            order = [root]
            for u in order:
                for v in sorted(self.adj[u]):
                    if not seen[v]:
                        seen[v], parent[v] = True, u
                        order.append(v)
            parent.setflags(write=False)
            self._rooted[root] = (parent, order)
        return self._rooted[root]


@dataclass(frozen=True)
class Slot:
    """One signal's votes on the tree's edges: agree[e] is the soft count of agreement
    when edge e = (u, v) points u -> v under sign +1. `fixed`: the sign is known."""

    name: str
    edge_ids: list[int]  # indices into Tree.edges this slot votes on
    agree_uv: np.ndarray  # [len(edge_ids)] soft agreement if oriented u -> v
    prior_plus: float = 0.5  # pi(sigma = +1)
    fixed: bool = False

    @property
    def m(self) -> float:
        return float(len(self.edge_ids))


def agreements(tree: Tree, slot: Slot) -> np.ndarray:
    """[n] soft count k(r) of agreeing votes (sign +1) for every root r, by rerooting:
    moving the root across edge (u, v) flips only that edge."""
    per_edge = dict(zip(slot.edge_ids, slot.agree_uv, strict=True))
    root = 0
    parent = tree.parents(root)
    k = np.zeros(tree.n)
    k[root] = sum(a if parent[tree.edges[e][1]] == tree.edges[e][0] else 1.0 - a
                  for e, a in per_edge.items())
    edge_index = {frozenset(e): i for i, e in enumerate(tree.edges)}
    for u in tree.order(root):
        for v in tree.adj[u]:
            if parent[v] != u:
                continue
            e = edge_index[frozenset((u, v))]
            a_uv = per_edge.get(e)
            if a_uv is None:
                k[v] = k[u]
                continue
            a = a_uv if tree.edges[e] == (u, v) else 1.0 - a_uv  # agreement of u -> v
            k[v] = k[u] - a + (1.0 - a)  # the edge now points v -> u
    return k


def slot_loglik(tree: Tree, slot: Slot) -> tuple[np.ndarray, np.ndarray]:
    """([n] log P(votes | root r), [n] P(sigma = +1 | votes, r))."""
    if slot.m == 0:
        return np.zeros(tree.n), np.full(tree.n, slot.prior_plus)
    k = agreements(tree, slot)
    plus = log_j(k, slot.m)
    if slot.fixed:
        return plus, np.ones(tree.n)
    minus = log_j(slot.m - k, slot.m)
    a = np.log(max(slot.prior_plus, 1e-12)) + plus
    b = np.log(max(1.0 - slot.prior_plus, 1e-12)) + minus
    total = np.logaddexp(a, b)
    return total, np.exp(a - total)


@dataclass(frozen=True)
class Rooting:
    root: int
    parents: np.ndarray  # [n] parent per node, -1 at the root
    posterior: np.ndarray  # [n] P(root = r)
    direction_confidence: np.ndarray  # [n] P(edge parent -> node points right); root: nan
    sign_plus: dict[str, float]  # per slot: P(sign = +1), root posterior averaged


def log_histories(tree: Tree) -> np.ndarray:
    """[n] log of the number of orders in which the tree could have grown from root r,
    one model at a time, each fine-tuned from one already there: n! / prod_u s_u(r),
    s_u(r) the size of u's subtree when rooted at r (Shah and Zaman's rumor centrality).
    If every existing model is equally likely to be the next one's parent, P(root = r |
    the tree's shape) is proportional to it: the prior over roots. A star's centre is k
    times likelier than each of its k leaves; a chain's middle beats its ends by
    little (two to one for three models), which direction evidence can overturn."""
    if tree.n == 0:
        return np.zeros(0)
    parents, order = tree.parents(0), tree.order(0)
    size = np.ones(tree.n)
    for v in reversed(order):
        if parents[v] >= 0:
            size[parents[v]] += size[v]
    out = np.zeros(tree.n)
    out[0] = -np.log(size).sum()
    for v in order:  # moving the root from parent u to child v: R(v) = R(u) s_v / (n - s_v)
        u = parents[v]
        if u >= 0:
            out[v] = out[u] + np.log(size[v]) - np.log(tree.n - size[v])
    return out


def root_tree(tree: Tree, slots: Sequence[Slot], root_evidence: np.ndarray | None = None,
              tie_order: np.ndarray | None = None) -> Rooting:
    """The posterior over roots (the growth prior log_histories times every slot's
    likelihood, times `root_evidence`: [n] log-likelihood ratios of each node's own
    evidence under "it is the root" against "it is not") and the MAP orientation.
    Roots the posterior cannot tell apart (a two-model tree no signal orients) are
    decided by `tie_order` ([n] ranks, lowest first; content_order gives one that
    depends on the weights alone), else by the lowest index."""
    logpost = log_histories(tree)
    if root_evidence is not None:
        logpost = logpost + root_evidence
    sign_given_root = {}
    for slot in slots:
        ll, plus = slot_loglik(tree, slot)
        logpost += ll
        sign_given_root[slot.name] = plus
    post = np.exp(logpost - logpost.max())  # scipy's logsumexp costs 20x on 20 roots
    post /= post.sum()
    root = map_root(post, tie_order)
    parents = tree.parents(root)
    below = post.copy()  # posterior mass of each node's subtree under the MAP root
    for v in reversed(tree.order(root)):
        if parents[v] >= 0:
            below[parents[v]] += below[v]
    conf = np.where(parents >= 0, 1.0 - below, np.nan)
    signs = {name: float(post @ plus) for name, plus in sign_given_root.items()}
    return Rooting(root, parents, post, np.clip(conf, 0.0, 1.0), signs)


TIE = 1e-9  # relative: posteriors this close are equal up to float rounding


def map_root(post: np.ndarray, tie_order: np.ndarray | None = None) -> int:
    """The most probable root; among roots within TIE of it, the first in `tie_order`.

    Ties are real: a two-model tree's posterior is 1/2 each whenever no signal's sign is
    known (each sign integrated out reads the edge both ways alike). Breaking them by
    index breaks them by model id, and names are not evidence: a zoo or a Hub family
    whose ids sort children before the base ("org/model-1" < "org/root") would read
    every such tree backwards, and renaming a model would turn its edges round."""
    if tie_order is None:
        return int(np.argmax(post))
    tied = np.flatnonzero(post >= post.max() * (1.0 - TIE))
    return int(tied[np.argmin(np.asarray(tie_order)[tied])])


def content_order(hashes: np.ndarray) -> np.ndarray:
    """[n] ranks of the models by a digest of their matrices' content hashes ([n, M]):
    an order the weights fix, whatever the models are called. Uniform over the models,
    unrelated to which is the parent: a tie decided by it is a coin toss, not a rule
    that always picks the same side of every edge."""
    keys = [hashlib.sha256("\0".join(str(h) for h in row).encode()).hexdigest()
            for row in hashes]
    return np.argsort(np.argsort(keys, kind="stable"), kind="stable")


def subtree_sets(parents: np.ndarray) -> list[set[int]]:
    """Per node, the set of nodes in its subtree (itself included)."""
    n = len(parents)
    children: list[list[int]] = [[] for _ in range(n)]
    for c, p in enumerate(parents):
        if p >= 0:
            children[p].append(c)
    out = []
    for c in range(n):
        below, stack = {c}, [c]
        while stack:
            for k in children[stack.pop()]:
                below.add(k)
                stack.append(k)
        out.append(below)
    return out
