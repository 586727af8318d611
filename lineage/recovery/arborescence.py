"""MoTHer's edge cost and the minimum directed spanning arborescence (Chu-Liu/Edmonds).

cost(i -> j) = D[i, j] + lam * mean(D) * violation(i -> j), lam = 0.3. MoTHer's
violation is 1 when kurtosis moves against the regime; ours is soft, the fraction of
changed matrices voting against the sign: (1 - s * V[i, j]) / 2.
"""

from __future__ import annotations

import networkx as nx
import numpy as np

LAMBDA = 0.3


def edge_costs(
    dist: np.ndarray, votes: np.ndarray, sign: np.ndarray | int, *, lam: float = LAMBDA,
    soft: bool = True,
) -> np.ndarray:
    """[n, n] cost of parent i -> child j. `sign` is +-1 or an [n, n] array of signs."""
    agree = np.asarray(sign) * votes
    violation = (1.0 - agree) / 2.0 if soft else (agree < 0).astype(np.float64)
    off = ~np.eye(dist.shape[0], dtype=bool)
    scale = dist[off].mean() if off.any() else 0.0
    return dist + lam * scale * violation


def min_arborescence(costs: np.ndarray) -> np.ndarray:
    """parent index of every node (-1 for the root) of the cheapest arborescence."""
    n = costs.shape[0]
    parents = np.full(n, -1, dtype=np.int64)
    if n < 2:
        return parents
    graph = nx.DiGraph()
    graph.add_nodes_from(range(n))
    graph.add_weighted_edges_from(
        (i, j, float(costs[i, j])) for i in range(n) for j in range(n) if i != j
    )
    tree = nx.minimum_spanning_arborescence(graph, attr="weight", preserve_attrs=True)
    for i, j in tree.edges():
        parents[j] = i
    return parents


def tree_cost(costs: np.ndarray, parents: np.ndarray) -> float:
    return float(sum(costs[p, c] for c, p in enumerate(parents) if p >= 0))


def second_best_margin(dist: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """[n] how much closer each node's parent is than its next-nearest other model:
    1 - d(parent) / d(runner-up), in [0, 1]; 0 for the root."""
    n = dist.shape[0]
    margin = np.zeros(n)
    for c, p in enumerate(parents):
        if p < 0:
            continue
        others = np.delete(dist[:, c], [c, p])
        if others.size:
            margin[c] = max(0.0, 1.0 - dist[p, c] / max(others.min(), 1e-300))
        else:
            margin[c] = 1.0
    return margin
