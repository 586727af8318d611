"""Numerical rank of W_i - W_j from the fingerprints' rank sketches: the LoRA signal.

A merged LoRA fine-tune differs from its parent by B @ A in the targeted matrices:
rank r, far below the dimension; full fine-tunes differ at full rank. The fingerprint
keeps Y = L W R per matrix (lineage.fingerprint.rank_sketch), linear, so
Y_i - Y_j = L (W_i - W_j) R has rank min(rank(W_i - W_j), k) with probability 1. No
weights are read.

Tolerance, derived from the dtypes. Stored weights carry rounding: W = W_exact + E with
|E_ab| <= u |W_ab| (u the dtype's unit roundoff, rounding.unit_roundoff), so an
elementwise variance <= u^2 W_ab^2 / 3 (uniform within half an ulp). Summed over both
models: sigma^2 = (u_i^2 ||W_i||^2 + u_j^2 ||W_j||^2) / 3, from the exact norms in the
moments. L has unit columns and R one +-1 per row, so L E R has expected energy exactly
sigma^2, spread over its k1 x k2 entries, which are near-independent and near-Gaussian
(each a signed sum of thousands of roundings). Y is stored as float32, which adds
u32^2 (||Y_i||^2 + ||Y_j||^2) / 3. A k1 x k2 Gaussian matrix with entry deviation s has
largest singular value above s (sqrt(k1) + sqrt(k2) + t) with probability at most
exp(-t^2 / 2) (Davidson-Szarek); t = 6 makes that 1.5e-8 per matrix. Singular values
above that are change, not rounding. The same rule applied to the real weights (k1 = m,
k2 = n, nothing stored) is `weight_rank`, which tests use to check the two agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from lineage.recovery.features import GroupFeatures
from lineage.recovery.rounding import unit_roundoff

TAIL = 6.0  # deviations of the largest noise singular value: P(exceed) <= exp(-18)
STORED = unit_roundoff("F32")  # rank sketches are stored as float32


def noise_tolerance(k1: int, k2: int, noise_energy: float) -> float:
    """The singular value that k1 x k2 rounding noise of expected energy
    `noise_energy` (sum of entry variances) exceeds with probability <= exp(-TAIL^2/2)."""
    s = math.sqrt(max(noise_energy, 0.0) / (k1 * k2))
    return s * (math.sqrt(k1) + math.sqrt(k2) + TAIL)


def count_above(delta: np.ndarray, tol: float) -> int:
    s = np.linalg.svd(delta, compute_uv=False)
    return int((s > tol).sum())


def weight_rank(w_i: np.ndarray, w_j: np.ndarray, u_i: float, u_j: float) -> int:
    """rank(W_i - W_j) from the real weights (float64), with the same derived tolerance:
    what the rank sketch is checked against."""
    energy = (u_i**2 * float((w_i**2).sum()) + u_j**2 * float((w_j**2).sum())) / 3.0
    return count_above(w_i - w_j, noise_tolerance(*w_i.shape, energy))


def sketch_rank(features: GroupFeatures, i: int, j: int, q: int) -> int | None:
    """rank(W_i - W_j) of matrix q, capped at the sketch's min(k1, k2); None when either
    fingerprint lacks the rank sketch (indexed before it existed)."""
    if features.rank_ok is None or not (features.rank_ok[i, q] and features.rank_ok[j, q]):
        return None
    y_i = features.rank_sketches[q][i].astype(np.float64)
    y_j = features.rank_sketches[q][j].astype(np.float64)
    u = features.roundoff
    energy = (u[i, q] ** 2 * features.sq_norms[i, q] + u[j, q] ** 2 * features.sq_norms[j, q]
              + STORED**2 * (float((y_i**2).sum()) + float((y_j**2).sum()))) / 3.0
    return count_above(y_i - y_j, noise_tolerance(*y_i.shape, energy))


def rank_fraction(features: GroupFeatures, i: int, j: int
                  ) -> tuple[float, dict[str, int | None]]:
    """Median of rank / min(shape) over the matrices i and j do not share (all of them,
    not only square ones: GPT-2's fused c_attn, a LoRA target, is 768 x 2304), and each
    changed matrix's rank by name (None where the evidence is missing). The median, not
    the mean: a LoRA run also trains a few matrices fully (a new classification head),
    which says nothing about the rest. A rank that fills the sketch (>= k, below
    min(shape)) reads as full: a LoRA of rank >= k is beyond what the sketch can tell
    from a full fine-tune. 1.0 when nothing is known."""
    ranks: dict[str, int | None] = {}
    fractions = []
    for q, name in enumerate(features.names):
        if features.hashes[i, q] == features.hashes[j, q]:
            continue
        r = ranks[name] = sketch_rank(features, i, j, q)
        if r is None:
            continue
        full = min(features.shapes[q])
        capacity = min(features.rank_sketches[q].shape[1:])
        fractions.append(1.0 if r >= capacity else r / full)
    return (float(np.median(fractions)) if fractions else 1.0), ranks


def candidate_pairs(dist: np.ndarray, k: int) -> list[tuple[int, int]]:
    """Each node with its k nearest others (by `dist`), as sorted unique pairs."""
    n = dist.shape[0]
    pairs: set[tuple[int, int]] = set()
    for c in range(n):
        order = [j for j in np.argsort(dist[c]) if j != c][:k]
        pairs.update((min(c, j), max(c, j)) for j in order)
    return sorted(pairs)


def has_rank_evidence(features: GroupFeatures) -> bool:
    return features.rank_ok is not None and bool(features.rank_ok.any())


def rank_factors(
    features: GroupFeatures, pairs: Iterable[tuple[int, int]]
) -> tuple[np.ndarray, dict[tuple[int, int], dict[str, int | None]]]:
    """[n, n] multiplicative distance factors (rank fraction; 1 where not computed)."""
    factors = np.ones((features.n, features.n))
    ranks = {}
    for i, j in pairs:
        frac, ranks[(i, j)] = rank_fraction(features, i, j)
        factors[i, j] = factors[j, i] = frac
    return factors, ranks
