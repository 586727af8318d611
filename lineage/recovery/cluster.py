"""Split an architecture group into Model Trees without being told how many there are.

Two models share a tree when a chain of significantly related pairs joins them (single
linkage). "Related" is a test, not a tuned cut: independent trainings of one
architecture start from independent random inits, and high-dimensional independent
weights are near-orthogonal, so their centred cosine (distance.centred_cosines) is
0 +- sigma with sigma from the matrices' sizes and the sketch widths
(distance.null_cosine_std). A pair is related when its cosine exceeds what the largest
of n(n-1)/2 independent pairs would reach by chance at FAMILY_RISK (a Bonferroni
bound), so a whole group is wrongly joined with probability at most FAMILY_RISK. A
fine-tune keeps most of its parent (cosine near 1), far above that bound, so one tree
or many, the test reads the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse.csgraph import connected_components
from scipy.special import ndtri

FAMILY_RISK = 0.01  # chance that ANY unrelated pair of a group is linked


@dataclass(frozen=True)
class Clustering:
    labels: np.ndarray  # int [n]: tree index of each model
    threshold: float  # the cosine above which a pair is related
    sigma: float  # the null cosine spread the threshold comes from
    rule: str = "significance"


def relation_threshold(sigma: float, n: int) -> float:
    """Cosine that n(n-1)/2 independent pairs exceed with total probability FAMILY_RISK."""
    pairs = max(n * (n - 1) // 2, 1)
    return float(sigma * ndtri(1.0 - FAMILY_RISK / pairs))


def cluster_trees(cos: np.ndarray, sigma: float) -> Clustering:
    """Tree labels for the models behind the [n, n] centred-cosine matrix `cos`."""
    n = cos.shape[0]
    threshold = relation_threshold(sigma, n)
    related = cos > threshold
    np.fill_diagonal(related, True)
    _, labels = connected_components(related, directed=False)
    return Clustering(labels, threshold, sigma)
