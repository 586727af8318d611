"""Placement in two tiers: low-rank (LoRA) edges by rank, then the rest by distance.

A merged LoRA adds B @ A of rank r to the matrices it targets. Along a path of LoRA
edges the changes add, and ranks of generic low-rank changes add too:
rank(W_i - W_j) is the sum of the edges' ranks on the path between them (up to the
matrix's size). Summed over matrices, the rank is then an additive tree metric
on every set of models joined by LoRA edges only: a pair that is not an edge is at the
sum of its path's edges, strictly more than each of them, so Kruskal's algorithm on the
ranks keeps exactly the LoRA edges. Distances cannot do that: two rank-1 siblings with
tiny steps sit closer to each other than a rank-16 child sits to its parent.

A pair whose difference is full rank has a full fine-tune somewhere on its path, so
low-rank pairs never cross a full edge: the first tier joins models into LoRA clusters,
and the second joins the clusters with the fine-tuning distance (distance.py), by
the same minimum spanning tree rule as before. Both tiers are one spanning tree over
a lexicographic key (rank first for low-rank pairs, distance for the rest), with
distance breaking ties among equal ranks.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from lineage.recovery.rooting import subtree_sets

ALL_PAIRS_LIMIT = 96  # components up to this size get the rank of every pair: n^2 / 2
# small SVDs; larger ones the ranks of each model's nearest candidates


def rank_sums(n: int, ranks: dict[tuple[int, int], dict[str, int | None]],
              lowrank: np.ndarray) -> np.ndarray:
    """[n, n]: total rank over changed matrices for low-rank pairs; inf elsewhere
    (full-rank pairs, pairs whose rank was not computed)."""
    out = np.full((n, n), np.inf)
    for (i, j), by_matrix in ranks.items():
        if lowrank[i, j]:
            out[i, j] = out[j, i] = float(sum(r for r in by_matrix.values() if r))
    np.fill_diagonal(out, 0.0)
    return out


def tiered_key(dist: np.ndarray, rank_sum: np.ndarray) -> np.ndarray:
    """[n, n] one number per pair whose order is (rank for low-rank pairs, then
    distance): low-rank pairs get rank + distance scaled below 1, the rest come after
    every low-rank pair, in distance order."""
    scale = 2.0 * max(float(dist.max()), 1e-300)
    low = np.isfinite(rank_sum)
    above = float(rank_sum[low].max()) + 1.0 if low.any() else 0.0
    key = np.where(low, np.where(low, rank_sum, 0.0) + dist / scale, above + 1.0 + dist)
    np.fill_diagonal(key, 0.0)
    return key


def runner_up_parents(dist: np.ndarray, parents: np.ndarray,
                      rank_sum: np.ndarray | None = None) -> list[int | None]:
    """[n] per node: the candidate its placement is weighed against, the nearest node
    outside its own subtree (its descendants would make a cycle) other than its parent:
    by rank for a low-rank edge (None when no other candidate is low-rank: a full-rank
    parent cannot add a low-rank change), by distance otherwise; None for the root and
    where there is no other candidate. Where the margin is small this is the parent the
    weights could as well have chosen (evidence `runner_up`)."""
    below = subtree_sets(parents)
    out: list[int | None] = []
    for c, p in enumerate(parents):
        others = [x for x in range(len(parents)) if x not in below[c] and x != p]
        if p < 0 or not others:
            out.append(None)
        elif _low_rank_edge(rank_sum, p, c):
            ranks = rank_sum[others, c]
            out.append(int(others[int(np.argmin(ranks))]) if np.isfinite(ranks).any()
                       else None)
        else:
            out.append(int(others[int(np.argmin(dist[others, c]))]))
    return out


def margins_against(dist: np.ndarray, parents: np.ndarray, runner_up: list[int | None],
                    rank_sum: np.ndarray | None = None) -> np.ndarray:
    """[n] per node: how clearly its parent beats its runner-up (runner_up_parents). A
    low-rank edge is compared by rank (1 - rank / runner-up's rank), a full edge by
    distance (1 - d / runner-up's d); 1 where there is no runner-up, 0 for the root."""
    margin = np.zeros(len(parents))
    for c, p in enumerate(parents):
        r = runner_up[c]
        if p < 0:
            continue
        if r is None:
            margin[c] = 1.0
        elif _low_rank_edge(rank_sum, p, c):
            margin[c] = 1.0 - rank_sum[p, c] / rank_sum[r, c]
        else:
            margin[c] = max(0.0, 1.0 - float(dist[p, c]) / max(float(dist[r, c]), 1e-300))
    return np.clip(margin, 0.0, 1.0)


def _low_rank_edge(rank_sum: np.ndarray | None, p: int, c: int) -> bool:
    return rank_sum is not None and bool(np.isfinite(rank_sum[p, c])) and rank_sum[p, c] > 0


def order_margins(dist: np.ndarray, parents: np.ndarray,
                  rank_sum: np.ndarray | None = None) -> np.ndarray:
    """[n] per node c with parent p and grandparent g: 1 - d(g, p) / d(g, c), how
    clearly p, not c, is the one next to g. The runner-up margin compares c's parent
    with nodes outside c's subtree, so it never asks whether p and c stand in the
    other order (g -> c -> p); where c barely moved from p they are one place and
    either order fits the distances, and the edge p -> c is then a guess however far
    the other candidates are. 1 where there is no grandparent, or where ranks fix the
    order: p - c is low-rank and c lies at a higher total rank from g than p does
    (ranks add along a path). A low-rank edge whose ranks from g do not rise (a LoRA
    child that barely moved, its update under what the rank sketch reads) is ordered by
    distance like any other: before, it was claimed at 0.95 and read backwards (three
    edges of the spent draw 1017/7)."""
    out = np.ones(len(parents))
    for c, p in enumerate(parents):
        if p < 0 or parents[p] < 0:
            continue
        g = parents[p]
        if rank_sum is not None and np.isfinite(rank_sum[p, c]) \
                and rank_sum[g, c] > rank_sum[g, p]:
            continue
        out[c] = max(0.0, 1.0 - float(dist[g, p]) / max(float(dist[g, c]), 1e-300))
    return out


def all_pairs(n: int) -> Iterable[tuple[int, int]]:
    return ((i, j) for i in range(n) for j in range(i + 1, n))


def balanced_gram(features) -> np.ndarray:  # noqa: ANN001 - GroupFeatures
    """[n, n] inner products of the models' sketches, each matrix scaled by one factor
    for all models (its mean norm), so every matrix weighs the same, as in placement,
    and differences stay linear; centred for float stability."""
    blocks = []
    for q, s in enumerate(features.sketches):
        scale = np.sqrt(max(float(features.sq_norms[:, q].mean()), 1e-300))
        blocks.append(s / scale)
    x = np.concatenate(blocks, axis=1)
    x = x - x.mean(axis=0, keepdims=True)
    return x @ x.T


def excess_cosine(gram: np.ndarray, x: int, a: int, b: int, others: list[int]) -> float:
    """How far b's step from x leans on a's step beyond what x's other children's
    steps do, against what inheriting it would add.

    With d_v = v - x: if b descends from a, d_b = d_a + b's own step, and cos(d_b, d_a)
    exceeds a typical sibling's cosine with d_a by |d_a| / |d_b|; if a and b are both
    x's children it does not exceed it at all. Returns (cos(d_b, d_a) - median over
    the others c of cos(d_c, d_a)) / (|d_a| / |d_b|): near 1 for a child of a, near 0 for
    a sibling. The siblings' shared drift (one task family, one optimiser) is what the
    median takes out; distances alone keep it, and when a barely moved from x it makes b
    look nearer a than x."""

    def inner(u: int, v: int) -> float:
        return gram[u, v] - gram[u, x] - gram[v, x] + gram[x, x]

    na = np.sqrt(max(inner(a, a), 1e-300))
    nb = np.sqrt(max(inner(b, b), 1e-300))
    typical = np.median([inner(c, a) / (na * np.sqrt(max(inner(c, c), 1e-300)))
                         for c in others])
    return float((inner(a, b) / (na * nb) - typical) / (na / nb))


SIBLING_CONTROLS = 2  # other children of x needed to read the siblings' typical cosine


def reattach_siblings(edges: list[tuple[int, int]], n: int, gram: np.ndarray,
                      lowrank: np.ndarray) -> list[tuple[int, int]]:
    """The spanning tree with each full-rank edge a -- b that b did not inherit moved to
    a's other neighbour x: where excess_cosine reads b as nearer a sibling of a (0)
    than a child of a (1), with at least SIBLING_CONTROLS other neighbours of x to read
    the siblings' typical cosine from. One pass, clearest first."""
    adj: list[set[int]] = [set() for _ in range(n)]
    for u, v in edges:
        adj[u].add(v)
        adj[v].add(u)
    moves = []
    for a in range(n):
        for x in adj[a]:
            others = sorted(adj[x] - {a})
            if len(others) < SIBLING_CONTROLS:
                continue
            for b in adj[a] - {x}:
                if not lowrank[a, b]:
                    share = excess_cosine(gram, x, a, b, others)
                    if share < 0.5:
                        moves.append((share, a, x, b))
    for _, a, x, b in sorted(moves):
        if b in adj[a] and x in adj[a] and b not in adj[x]:
            adj[a].discard(b)
            adj[b].discard(a)
            adj[x].add(b)
            adj[b].add(x)
    return sorted((u, v) for u in range(n) for v in adj[u] if u < v)
