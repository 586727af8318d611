"""Split an architecture group into Model Trees without being told how many there are.

Single linkage over relative distance (see distance.relative_distance): two models share
a tree when a chain of close pairs joins them. The cut is chosen from the data: the
largest multiplicative gap among the single-linkage merge heights, looked for between
MIN_CUT and MAX_CUT. Independent trainings sit near sqrt(2) (near-orthogonal weights),
fine-tunes far below 1, so the gap between the two populations is wide; when no gap
exceeds MIN_GAP (one tree, or all unrelated), the fixed prior cut DEFAULT_CUT decides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree

MIN_CUT, MAX_CUT = 0.5, 1.3  # a cut outside this band would contradict the physics above
DEFAULT_CUT = 0.8  # cosine of weights ~0.68: far from both populations
MIN_GAP = 2.0  # a ratio between consecutive merge heights that counts as a gap


@dataclass(frozen=True)
class Clustering:
    labels: np.ndarray  # int [n]: tree index of each model
    threshold: float  # the relative distance the cut was made at
    heights: list[float]  # sorted single-linkage merge heights (the evidence)
    rule: str  # "gap" | "prior"


def merge_heights(rel: np.ndarray) -> np.ndarray:
    """Sorted edge weights of the minimum spanning tree = single-linkage heights."""
    if rel.shape[0] < 2:
        return np.zeros(0)
    # The MST ignores zeros as "no edge": lift exact copies to a tiny positive distance.
    mst = minimum_spanning_tree(np.maximum(rel, 1e-12))
    return np.sort(mst.data)


def choose_cut(heights: np.ndarray) -> tuple[float, str]:
    """The relative distance to cut at: the widest gap inside the band, else the prior."""
    best, cut = MIN_GAP, None
    for lo, hi in zip(heights[:-1], heights[1:], strict=True):
        mid = float(np.sqrt(lo * hi))
        if hi / lo > best and MIN_CUT <= mid <= MAX_CUT:
            best, cut = hi / lo, mid
    return (cut, "gap") if cut is not None else (DEFAULT_CUT, "prior")


def cluster_trees(rel: np.ndarray) -> Clustering:
    """Tree labels for the models behind the [n, n] relative-distance matrix `rel`."""
    heights = merge_heights(rel)
    cut, rule = choose_cut(heights)
    _, labels = connected_components(rel < cut, directed=False)
    return Clustering(labels, cut, [round(float(h), 6) for h in heights], rule)
