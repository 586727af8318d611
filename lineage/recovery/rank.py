"""Numerical rank of W_i - W_j from real weights: the LoRA signal.

A merged LoRA fine-tune differs from its parent by B @ A in the targeted matrices:
rank r, far below the dimension; full fine-tunes differ at full rank. Sketches cannot
see rank, so the caller supplies a MatrixSource and this runs on candidate pairs only.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from lineage.recovery.features import GroupFeatures
from lineage.recovery.inputs import MatrixSource

REL_TOL = 1e-3  # singular values below REL_TOL * s_max are storage rounding, not rank


def numerical_rank(delta: np.ndarray, rel_tol: float = REL_TOL) -> int:
    s = np.linalg.svd(delta, compute_uv=False)
    if s.size == 0 or s[0] == 0.0:
        return 0
    return int((s > rel_tol * s[0]).sum())


def rank_fraction(
    source: MatrixSource, features: GroupFeatures, i: int, j: int
) -> tuple[float, list[int]]:
    """Mean of rank / min(shape) over the square matrices i and j do not share, and
    the per-matrix ranks (0 for shared ones). 1.0 when nothing changed is unknowable."""
    ranks, fractions = [], []
    for q in np.flatnonzero(features.square):
        if features.hashes[i, q] == features.hashes[j, q]:
            ranks.append(0)
            continue
        name = features.names[q]
        delta = source.matrix(features.ids[i], name) - source.matrix(features.ids[j], name)
        r = numerical_rank(delta)
        ranks.append(r)
        fractions.append(r / min(delta.shape))
    return (float(np.mean(fractions)) if fractions else 1.0), ranks


def candidate_pairs(dist: np.ndarray, k: int) -> list[tuple[int, int]]:
    """Each node with its k nearest others (by `dist`), as sorted unique pairs."""
    n = dist.shape[0]
    pairs: set[tuple[int, int]] = set()
    for c in range(n):
        order = [j for j in np.argsort(dist[c]) if j != c][:k]
        pairs.update((min(c, j), max(c, j)) for j in order)
    return sorted(pairs)


def rank_factors(
    source: MatrixSource, features: GroupFeatures, pairs: Iterable[tuple[int, int]]
) -> tuple[np.ndarray, dict[tuple[int, int], list[int]]]:
    """[n, n] multiplicative distance factors (rank fraction; 1 where not computed)."""
    factors = np.ones((features.n, features.n))
    ranks = {}
    for i, j in pairs:
        frac, ranks[(i, j)] = rank_fraction(source, features, i, j)
        factors[i, j] = factors[j, i] = frac
    return factors, ranks
