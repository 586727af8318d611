"""Which way an edge points: per-matrix votes of three signals.

MoTHer sums excess kurtosis over square matrices and is told the regime (falls during
fine-tuning, rises in long pre-training). We are not told: each pair gets a vote
V[i, j] in [-1, 1], the mean over the square matrices the two models do not share
byte for byte of sign(kurt_j - kurt_i): +1 when every changed matrix is more kurtotic
in j. Which sign a tree follows, and how reliable the signal is there, is decided per
tree by rooting.py (integrated out, with the architecture group as a prior).

A second per-matrix signal is voted the same way: the squared norm ||W||^2 (exact,
from the moments). Training without strong weight decay adds increments nearly
orthogonal to the weights, so norms tend to grow along a path; with weight decay they
shrink; its sign is never assumed either. A third is structural: per matrix, a model's
nearness to the other members of its component (from sketches). Siblings fan out from
their parent, so a parent sits nearer the middle of its family than its children do;
a chain without branching has no such middle. Per matrix and pair (i, j) each other
model x says which of the two it is nearer, and the majority of them decides: cutting
the tree edge i - j splits the family in two, and with increments roughly orthogonal
every x lies nearer the end on its own side, so the parent wins whenever its side is
the larger one. One model one vote: a summed distance instead lets a far-out model (a
large LoRA change) outweigh the count.
"""

from __future__ import annotations

import numpy as np

from lineage.recovery.features import GroupFeatures

MAX_WITNESSES = 64  # models that vote on centrality (evenly spaced beyond this many)


SIGNALS = ("kurtosis", "norm", "centrality")
BLOCK_ELEMENTS = 1 << 22  # (i, j, witness) triples held at once by centrality_votes


def kurtosis_votes(features: GroupFeatures) -> np.ndarray:
    """[n, n] antisymmetric votes; V[i, j] > 0: kurtosis rises from i to j."""
    return matrix_votes(features, features.kurtosis)


def norm_votes(features: GroupFeatures) -> np.ndarray:
    """[n, n] antisymmetric votes; V[i, j] > 0: ||W||^2 grows from i to j."""
    return matrix_votes(features, features.sq_norms)


def centrality_votes(features: GroupFeatures) -> np.ndarray:
    """[n, n] antisymmetric votes; V[i, j] > 0: j lies farther out in the component.
    Per changed square matrix, the sign of (#witnesses nearer i) - (#nearer j)."""
    n = features.n
    mask = features.square
    h = features.hashes[:, mask]
    witnesses = np.unique(np.linspace(0, n - 1, min(n, MAX_WITNESSES)).round().astype(int))
    total = np.zeros((n, n))
    count = np.zeros((n, n))
    own = witnesses[None, :] == np.arange(n)[:, None]  # [n, W]: x is j itself
    for k, q in enumerate(np.flatnonzero(mask)):
        d = pair_distances(features.sketches[q])[:, witnesses]  # [n, W]
        nearer = np.zeros((n, n))
        step = max(1, BLOCK_ELEMENTS // max(n * witnesses.size, 1))
        for start in range(0, n, step):  # blocks of i, vectorised over (i, j, x):
            # sum over witnesses x (neither i nor j) of sign(d_jx - d_ix)
            s = np.sign(d[None, :, :] - d[start:start + step, None, :])
            s[:, own] = 0.0
            s[own[start:start + step][:, None, :].repeat(n, axis=1)] = 0.0
            nearer[start:start + step] = s.sum(axis=2)
        changed = h[:, None, k] != h[None, :, k]
        total += np.sign(nearer) * changed
        count += changed
    return total / np.maximum(count, 1)


def pair_distances(s: np.ndarray) -> np.ndarray:
    """float64 [n, n]: ||S(W_i) - S(W_j)|| for one matrix's sketches."""
    x = s - s.mean(axis=0, keepdims=True)  # centred: no cancellation (distance.py)
    sq = np.einsum("ij,ij->i", x, x)
    return np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0))


def direction_votes(features: GroupFeatures) -> dict[str, np.ndarray]:
    return {"kurtosis": kurtosis_votes(features), "norm": norm_votes(features),
            "centrality": centrality_votes(features)}


def matrix_votes(features: GroupFeatures, values: np.ndarray) -> np.ndarray:
    """[n, n]: mean over square matrices that differ of sign(values_j - values_i)."""
    mask = features.square
    k = values[:, mask]  # [n, Q]
    h = features.hashes[:, mask]
    rises = np.sign(k[None, :, :] - k[:, None, :])  # [n, n, Q]: sign(k_j - k_i)
    changed = h[:, None, :] != h[None, :, :]
    count = changed.sum(axis=2)
    votes = (rises * changed).sum(axis=2) / np.maximum(count, 1)
    return votes
