"""Which way an edge points: votes of three signals.

MoTHer sums excess kurtosis over square matrices and is told the regime (falls during
fine-tuning, rises in long pre-training). We are not told: each pair gets a vote
V[i, j] in [-1, 1], the mean over the matrices (square or not: a LoRA on GPT-2's fused
768 x 2304 c_attn changes no square one) the two models do not share
byte for byte of sign(kurt_j - kurt_i): +1 when every changed matrix is more kurtotic
in j. Which sign a tree follows, and how reliable the signal is there, is decided per
tree by rooting.py (integrated out, with the architecture group as a prior).

A second per-matrix signal is voted the same way: the squared norm ||W||^2 (exact,
from the moments). Training without strong weight decay adds increments nearly
orthogonal to the weights, so norms tend to grow along a path; with weight decay they
shrink; its sign is never assumed either.

A third compares how uniformly each reads as the other shrunk plus a step
(projection_votes): weight decay shrinks every matrix by one factor and updates are
nearly orthogonal to the weights, so only the true direction gives one coefficient.

All are functions of the pair's weights, so a root that makes every vote agree is a
real finding.
A "centrality" vote (the parent sits nearer its family's middle) is not used: it is a
function of the tree's shape alone, so the tree's centroid always makes it agree
perfectly, right or wrong, and it would pass for a reliable signal where it is none.
"""

from __future__ import annotations

import numpy as np

from lineage.recovery.distance import matrix_sq_dists
from lineage.recovery.features import GroupFeatures

SIGNALS = ("kurtosis", "norm", "projection")


def kurtosis_votes(features: GroupFeatures) -> np.ndarray:
    """[n, n] antisymmetric votes; V[i, j] > 0: kurtosis rises from i to j."""
    return matrix_votes(features, features.kurtosis)


def norm_votes(features: GroupFeatures) -> np.ndarray:
    """[n, n] antisymmetric votes; V[i, j] > 0: ||W||^2 grows from i to j."""
    return matrix_votes(features, features.sq_norms)


def projection_votes(features: GroupFeatures, sq: np.ndarray | None = None) -> np.ndarray:
    """[n, n] antisymmetric votes; V[i, j] > 0: the projection of W_j on W_i is more
    uniform across matrices than the reverse, i.e. j reads as i shrunk plus a new step.

    A step from parent P: W_c = (1 - lam) W_p + u, lam the weight decay's shrink (the
    same factor in every matrix: decoupled decay and L2 scale all weights alike) and u
    the update, nearly orthogonal to W_p. Then <W_c, W_p> / |W_p|^2 = 1 - lam in every
    matrix, while read backwards <W_p, W_c> / |W_c|^2 = (1 - lam) / ((1 - lam)^2 + r^2),
    r = |u| / |W_p| the matrix's own relative step, which differs from matrix to matrix.
    The vote is the sign of (spread backwards - spread forwards), the spreads taken over
    the changed matrices of the log coefficient (one vote per pair, so a hard one). Its
    sign is not assumed either (updates aligned with the weights, as early in training,
    break it); on the development draws it points the right way on 61 % of true edges
    (kurtosis rises on 59 %, norms grow on 45 %)."""
    sq = matrix_sq_dists(features) if sq is None else sq  # [M, n, n]
    norms = np.maximum(features.sq_norms.T, 1e-300)  # [M, n]
    inner = np.maximum((norms[:, :, None] + norms[:, None, :] - sq) / 2.0, 1e-300)
    changed = (features.hashes[:, None, :] != features.hashes[None, :, :]).transpose(2, 0, 1)
    fwd = np.log(inner / norms[:, :, None])  # [M, i, j]: coefficient of W_j on W_i
    back = np.log(inner / norms[:, None, :])
    votes = _spread(back, changed) - _spread(fwd, changed)
    return np.where(changed.sum(axis=0) >= 2, np.sign(votes), 0.0)


def _spread(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """[n, n] standard deviation over the masked matrices (axis 0)."""
    count = np.maximum(mask.sum(axis=0), 1)
    mean = (values * mask).sum(axis=0) / count
    return np.sqrt(((values - mean) ** 2 * mask).sum(axis=0) / count)


def direction_votes(features: GroupFeatures, sq: np.ndarray | None = None
                    ) -> dict[str, np.ndarray]:
    """Every signal's votes; `sq`: the matrices' sketched squared distances
    (distance.matrix_sq_dists) when the caller already has them."""
    return {"kurtosis": kurtosis_votes(features), "norm": norm_votes(features),
            "projection": projection_votes(features, sq)}


def matrix_votes(features: GroupFeatures, values: np.ndarray) -> np.ndarray:
    """[n, n]: mean over the matrices that differ of sign(values_j - values_i)."""
    k, h = values, features.hashes  # [n, Q]
    rises = np.sign(k[None, :, :] - k[:, None, :])  # [n, n, Q]: sign(k_j - k_i)
    changed = h[:, None, :] != h[None, :, :]
    count = changed.sum(axis=2)
    votes = (rises * changed).sum(axis=2) / np.maximum(count, 1)
    return votes
