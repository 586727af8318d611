"""MoTHer's own recipe (Horwitz et al. 2024), as a baseline computed by our code.

Per architecture group: Ward clustering of the distance matrix into the given number
of trees; per tree, MoTHer's distance (full FT: mean RMS over square matrices; LoRA:
sum over square matrices of rank(W_i - W_j)), the summed excess kurtosis of square
matrices as a scalar with a FIXED regime (-1: falls parent -> child, their fine-tuning
setting), hard violation cost with lam = 0.3, minimum spanning arborescence. Trees
only: no merges, copies or adapters; every edge is 'finetune'.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

from lineage.recovery.arborescence import LAMBDA, edge_costs, min_arborescence
from lineage.recovery.distance import mother_distance
from lineage.recovery.features import GroupFeatures, group_features, matrix_names
from lineage.recovery.graph import RecoveredEdge
from lineage.recovery.inputs import ModelInput
from lineage.recovery.rank import sketch_rank


def ward_clusters(dist: np.ndarray, k: int) -> np.ndarray:
    if dist.shape[0] <= 1 or k <= 1:
        return np.zeros(dist.shape[0], dtype=np.int64)
    condensed = squareform((dist + dist.T) / 2.0, checks=False)
    return fcluster(linkage(condensed, method="ward"), t=k, criterion="maxclust") - 1


def rank_distance(features: GroupFeatures) -> np.ndarray:
    """[n, n] sum over square matrices of rank(W_i - W_j), every pair (MoTHer's LoRA),
    from the rank sketches (capped at the sketch width; missing evidence counts 0)."""
    n = features.n
    dist = np.zeros((n, n))
    squares = np.flatnonzero(features.square)
    for i in range(n):
        for j in range(i + 1, n):
            dist[i, j] = dist[j, i] = sum(sketch_rank(features, i, j, q) or 0 for q in squares)
    return dist


def kurtosis_sign_votes(features: GroupFeatures) -> np.ndarray:
    """[n, n] sign(K_j - K_i) of the summed square-matrix kurtosis (MoTHer's scalar)."""
    k = features.kurtosis[:, features.square].sum(axis=1)
    return np.sign(k[None, :] - k[:, None])


def mother_recipe(
    models: Sequence[ModelInput],
    trees_per_group: Mapping[str, int],
    *,
    lora: bool = False,
    regime: int = -1,
    lam: float = LAMBDA,
) -> tuple[list[RecoveredEdge], list[list[str]]]:
    """(edges, trees). `trees_per_group`: the number of trees per architecture
    signature, which MoTHer must be given."""
    groups: dict[str, list[ModelInput]] = defaultdict(list)
    for m in models:
        if not m.is_adapter and matrix_names(m):
            groups[m.arch_signature].append(m)
    edges, trees = [], []
    for sig, members in sorted(groups.items()):
        features = group_features(members)
        labels = ward_clusters(mother_distance(features), trees_per_group.get(sig, 1))
        for label in np.unique(labels):
            sub = features.take(np.flatnonzero(labels == label))
            dist = rank_distance(sub) if lora else mother_distance(sub)
            costs = edge_costs(dist, kurtosis_sign_votes(sub), regime, lam=lam, soft=False)
            parents = min_arborescence(costs)
            edges += [RecoveredEdge(sub.ids[p], sub.ids[c], "finetune", 1.0, {})
                      for c, p in enumerate(parents) if p >= 0]
            trees.append(list(sub.ids))
    return edges, trees
