"""MoTHer's edge cost and the minimum directed spanning arborescence (Chu-Liu/Edmonds).

The arborescence is a dense numpy Chu-Liu/Edmonds (networkx's general implementation
copies multigraphs per step: ~0.1 s for 20 nodes, too slow for thousands of trees);
tests check it against networkx `minimum_spanning_arborescence`. Any node may be the
root: a virtual root reaches every node at one cost larger than any whole tree, so
the optimum uses exactly one virtual edge, to the best root.

cost(i -> j) = D[i, j] + lam * mean(D) * violation(i -> j), lam = 0.3. MoTHer's
violation is 1 when kurtosis moves against the regime; ours is soft, the fraction of
changed matrices voting against the sign: (1 - s * V[i, j]) / 2.
"""

from __future__ import annotations

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
    """parent index of every node (-1 for the root) of the cheapest arborescence over
    the complete digraph with `costs[i, j]` for i -> j (the diagonal is ignored)."""
    n = costs.shape[0]
    if n < 2:
        return np.full(n, -1, dtype=np.int64)
    c = np.asarray(costs, dtype=np.float64)
    big = (np.abs(c[~np.eye(n, dtype=bool)]).sum() + 1.0) * 2.0
    full = np.full((n + 1, n + 1), np.inf)
    full[1:, 1:] = c
    full[0, 1:] = big
    parents = edmonds(full, 0)[1:] - 1  # virtual root 0 -> -1
    return parents.astype(np.int64)


def edmonds(cost: np.ndarray, root: int) -> np.ndarray:
    """Chu-Liu/Edmonds on a dense [n, n] cost matrix (inf: no edge); parent per node,
    -1 for `root`. O(n^3) worst case, vectorised per contraction."""
    n = cost.shape[0]
    c = cost.copy()
    np.fill_diagonal(c, np.inf)
    c[:, root] = np.inf
    parent = np.argmin(c, axis=0)
    parent[root] = -1
    cycle = _find_cycle(parent)
    if not cycle:
        return parent
    in_cycle = np.zeros(n, dtype=bool)
    in_cycle[cycle] = True
    others = np.flatnonzero(~in_cycle)
    k = len(others)
    cyc = np.array(cycle)
    # Entering the cycle at v replaces v's cycle edge: cost c[u, v] - c[parent[v], v].
    enter = c[np.ix_(others, cyc)] - c[parent[cyc], cyc][None, :]  # [k, |C|]
    leave = c[np.ix_(cyc, others)]  # [|C|, k]
    small = np.full((k + 1, k + 1), np.inf)
    small[:k, :k] = c[np.ix_(others, others)]
    small[:k, k] = enter.min(axis=1)
    small[k, :k] = leave.min(axis=0)
    sub = edmonds(small, int(np.flatnonzero(others == root)[0]))
    out = parent.copy()
    for i, v in enumerate(others):
        p = sub[i]
        out[v] = -1 if p < 0 else (cyc[np.argmin(leave[:, i])] if p == k else others[p])
    u = sub[k]
    out[cyc[np.argmin(enter[u])]] = others[u]
    return out


def _find_cycle(parent: np.ndarray) -> list[int]:
    """Nodes of one cycle of the parent map, or [] if it is a forest."""
    state = np.zeros(len(parent), dtype=np.int8)  # 0 new, 1 on current path, 2 done
    for start in range(len(parent)):
        path, v = [], start
        while v >= 0 and state[v] == 0:
            state[v] = 1
            path.append(v)
            v = parent[v]
        if v >= 0 and state[v] == 1:
            return path[path.index(v):]
        state[path] = 2
    return []


def tree_cost(costs: np.ndarray, parents: np.ndarray) -> float:
    return float(sum(costs[p, c] for c, p in enumerate(parents) if p >= 0))
