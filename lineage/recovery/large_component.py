"""A component too large for dense [n, n] arrays (one base with tens of thousands of
fine-tunes): the same Component, its pair arrays sparse over the candidate pairs.

Placement is the minimum spanning tree of the candidate graph (orient.spanning_tree
reads sparse matrices): fine-tuning increments are near-orthogonal, so a model's tree
neighbours are its nearest models and are among its candidates; the MST of the full
graph and of the candidate graph then agree. Direction votes are computed for candidate
pairs only (kurtosis and norm exactly as direction.py). What is quadratic is skipped
and said so in the notes: the merge search (NNLS of every model on all others) and
placement margins over non-candidates
(the runner-up parent is looked for among the candidates).
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from lineage.recovery.candidates import CandidatePairs, pair_placement_distance
from lineage.recovery.component import FULL_RANK, RANK_FLOOR, Component
from lineage.recovery.features import GroupFeatures
from lineage.recovery.rank import has_rank_evidence, rank_fraction


def prepare_large_component(
    features: GroupFeatures, pairs: CandidatePairs, *, rank_neighbours: int = 4,
    group: str = "",
) -> tuple[Component, str]:
    """(the component with sparse pair arrays, a note on what was skipped)."""
    n = features.n
    raw = pair_placement_distance(features, pairs)
    factors = np.ones(pairs.size)
    ranks: dict[tuple[int, int], dict[str, int | None]] = {}
    if has_rank_evidence(features):
        for e in nearest_pairs(pairs, raw, n, rank_neighbours):
            i, j = int(pairs.i[e]), int(pairs.j[e])
            factors[e], ranks[(i, j)] = rank_fraction(features, i, j)
    votes = {"kurtosis": pair_matrix_votes(features, pairs, features.kurtosis),
             "norm": pair_matrix_votes(features, pairs, features.sq_norms)}
    comp = Component(
        features=features, merges=[], merge_margins=[], all_ids=features.ids,
        dist=symmetric(pairs, raw * np.maximum(factors, RANK_FLOOR), n),
        raw_dist=symmetric(pairs, raw, n),
        votes={k: symmetric(pairs, v, n, sign=-1.0) for k, v in votes.items()},
        lowrank=symmetric(pairs, (factors < FULL_RANK).astype(np.float64), n),
        factors=symmetric(pairs, factors, n),
        ranks=ranks, group=group,
    )
    note = (f"component of {n} models ({features.ids[0]} ...) is larger than the dense "
            f"limit: placed by a sparse spanning tree over {pairs.size} candidate pairs; "
            f"merges not searched; placement margins and LoRA ranks over candidates only")
    return comp, note


def symmetric(pairs: CandidatePairs, values: np.ndarray, n: int, sign: float = 1.0
              ) -> sparse.csr_matrix:
    """[n, n] sparse: values at (i, j) and sign * values at (j, i). Explicit zeros are
    kept (a vote of 0 and "no vote" read the same; a distance of 0 is lifted by the
    spanning tree)."""
    rows = np.concatenate([pairs.i, pairs.j])
    cols = np.concatenate([pairs.j, pairs.i])
    data = np.concatenate([values, sign * values])
    return sparse.csr_matrix((data, (rows, cols)), shape=(n, n))


def nearest_pairs(pairs: CandidatePairs, dist: np.ndarray, n: int, k: int) -> np.ndarray:
    """Pair indices: each node with its k nearest candidates (rank.candidate_pairs on the
    candidate graph)."""
    node = np.concatenate([pairs.i, pairs.j])
    edge = np.concatenate([np.arange(pairs.size)] * 2)
    order = np.lexsort((dist[edge], node))
    node, edge = node[order], edge[order]
    start = np.searchsorted(node, np.arange(n))
    rank = np.arange(node.size) - start[node]
    return np.unique(edge[rank < k])


def pair_matrix_votes(features: GroupFeatures, pairs: CandidatePairs, values: np.ndarray
                      ) -> np.ndarray:
    """[E]: direction.matrix_votes at (i, j) for the candidate pairs (every matrix)."""
    k, h = values, features.hashes
    rises = np.sign(k[pairs.j] - k[pairs.i])
    changed = h[pairs.i] != h[pairs.j]
    return (rises * changed).sum(axis=1) / np.maximum(changed.sum(axis=1), 1)


def sparse_placement_margins(dist: sparse.csr_matrix, parents: np.ndarray) -> np.ndarray:
    """placement.margins_against by distance, with the possible parents limited to each node's
    candidates: subtrees from one Euler tour instead of a set per node."""
    n = len(parents)
    tin, tout = euler_tour(parents)
    coo = dist.tocoo()
    x, c, d = coo.row, coo.col, coo.data
    outside = ~((tin[c] <= tin[x]) & (tin[x] < tout[c]))
    valid = outside & (x != parents[c])
    runner = np.full(n, np.inf)
    np.minimum.at(runner, c[valid], d[valid])
    own = np.zeros(n)
    child = np.flatnonzero(parents >= 0)
    own[child] = gather_pairs(dist, parents[child], child)
    margin = np.where(np.isfinite(runner),
                      np.maximum(0.0, 1.0 - own / np.maximum(runner, 1e-300)), 1.0)
    return np.where(parents >= 0, margin, 0.0)


def gather_pairs(matrix: sparse.csr_matrix, rows: np.ndarray, cols: np.ndarray
                 ) -> np.ndarray:
    if rows.size == 0:
        return np.zeros(0)
    return np.asarray(matrix[rows, cols]).reshape(-1)


def euler_tour(parents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(entry, exit) times: x is in the subtree of c iff tin[c] <= tin[x] < tout[c]."""
    n = len(parents)
    children: list[list[int]] = [[] for _ in range(n)]
    roots = []
    for c, p in enumerate(parents.tolist()):
        (children[p] if p >= 0 else roots).append(c)
    tin, tout = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    clock = 0
    for root in roots:
        stack = [(root, False)]
        while stack:
            node, done = stack.pop()
            if done:
                tout[node] = clock
                continue
            tin[node] = clock
            clock += 1
            stack.append((node, True))
            stack.extend((k, False) for k in children[node])
    return tin, tout
