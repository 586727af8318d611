"""Which way an edge points: per-matrix votes of three signals.

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

Both are functions of a model, so a root that makes every vote agree is a real finding.
A "centrality" vote (the parent sits nearer its family's middle) is not used: it is a
function of the tree's shape alone, so the tree's centroid always makes it agree
perfectly, right or wrong, and it would pass for a reliable signal where it is none.
"""

from __future__ import annotations

import numpy as np

from lineage.recovery.features import GroupFeatures

SIGNALS = ("kurtosis", "norm")


def kurtosis_votes(features: GroupFeatures) -> np.ndarray:
    """[n, n] antisymmetric votes; V[i, j] > 0: kurtosis rises from i to j."""
    return matrix_votes(features, features.kurtosis)


def norm_votes(features: GroupFeatures) -> np.ndarray:
    """[n, n] antisymmetric votes; V[i, j] > 0: ||W||^2 grows from i to j."""
    return matrix_votes(features, features.sq_norms)


def direction_votes(features: GroupFeatures) -> dict[str, np.ndarray]:
    return {"kurtosis": kurtosis_votes(features), "norm": norm_votes(features)}


def matrix_votes(features: GroupFeatures, values: np.ndarray) -> np.ndarray:
    """[n, n]: mean over the matrices that differ of sign(values_j - values_i)."""
    k, h = values, features.hashes  # [n, Q]
    rises = np.sign(k[None, :, :] - k[:, None, :])  # [n, n, Q]: sign(k_j - k_i)
    changed = h[:, None, :] != h[None, :, :]
    count = changed.sum(axis=2)
    votes = (rises * changed).sum(axis=2) / np.maximum(count, 1)
    return votes
