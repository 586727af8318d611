"""Merges: a child that is a non-negative combination of several parents' task vectors.

For a candidate child m and base b, fit  S(m) - S(b) ~ sum_k c_k (S(p_k) - S(b)),  c >= 0
(NNLS over every other model of the component; sketches are linear, so this is the fit
on the weights themselves). A merge is accepted when the fit leaves far less of the
child unexplained than the best single parent does, with at least two parents carrying
weight. A plain fine-tune is explained by its parent alone (its own new delta is
orthogonal to everything), so the multi-parent fit cannot beat the single one by much.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls

from lineage.recovery.features import GroupFeatures

MAX_RATIO = 0.5  # multi-parent residual / best single-parent residual must be below
MAX_RESIDUAL = 0.15  # and the fit must explain the child almost whole (siblings average
# towards their parent: a root fits its children at ~0.2, a linear merge at ~0)
MIN_SHARE = 0.1  # a parent's share of the fitted delta norm to count as a parent


@dataclass(frozen=True)
class MergeFit:
    child: int
    base: int
    parents: list[int]
    coefficients: list[float]
    residual: float  # ||unexplained|| / ||S(m) - S(b)|| with all parents
    single_residual: float  # the same with the best single parent
    rule: str = "nnls on task vectors"  # or sparse_merges' exact check on weights

    @property
    def ratio(self) -> float:
        return self.residual / max(self.single_residual, 1e-12)

    def to_evidence(self, ids: list[str]) -> dict:
        return {
            "rule": self.rule,
            "base": ids[self.base],
            "coefficients": {ids[p]: round(c, 4) for p, c in
                             zip(self.parents, self.coefficients, strict=True)},
            "residual": round(self.residual, 4),
            "best_single_residual": round(self.single_residual, 4),
        }


def gram(features: GroupFeatures) -> np.ndarray:
    """[n, n] inner products of the models' concatenated matrix sketches (every element
    weighs the same, as in ||W_i - W_j||), centred for float stability."""
    x = np.concatenate(features.sketches, axis=1)
    x = x - x.mean(axis=0, keepdims=True)
    return x @ x.T


def fit_merge(g: np.ndarray, child: int, base: int) -> MergeFit:
    """Fit child - base on every other model's task vector, from the Gram matrix only.

    With A = [x_k - x_b] and y = x_m - x_b: A^T A = L L^T (Cholesky), and
    ||A c - y||^2 = ||L^T c - z||^2 + |y|^2 - |z|^2 with z = L^-1 A^T y, so NNLS runs on
    a K x K system whatever the sketch width."""
    n = g.shape[0]
    cols = np.array([k for k in range(n) if k not in (child, base)])
    gb = g[:, base]
    ata = g[np.ix_(cols, cols)] - gb[cols][:, None] - gb[cols][None, :] + g[base, base]
    aty = g[cols, child] - gb[cols] - g[base, child] + g[base, base]
    yy = max(g[child, child] - 2 * g[base, child] + g[base, base], 1e-300)
    diag = np.maximum(np.diag(ata), 1e-300)
    chol = np.linalg.cholesky(ata + np.eye(len(cols)) * 1e-9 * diag.max())
    z = np.linalg.solve(chol, aty)
    coef, rnorm = nnls(chol.T, z)
    resid = np.sqrt(max(rnorm**2 + yy - z @ z, 0.0) / yy)
    single = np.sqrt(max(0.0, 1.0 - float((np.maximum(aty, 0.0) ** 2 / diag).max()) / yy))
    fitted = np.sqrt(max(float(coef @ ata @ coef), 1e-300))
    share = coef * np.sqrt(diag) / fitted
    keep = [k for k in np.argsort(-share) if share[k] >= MIN_SHARE]
    return MergeFit(child, base, [int(cols[k]) for k in keep], [float(coef[k]) for k in keep],
                    float(resid), float(single))


def detect_merges(features: GroupFeatures, bases_per_child: int = 6) -> list[MergeFit]:
    """Accepted merges of one component, best fit per child. Bases tried: the child's
    nearest models (a merge sits near its parents' common ancestor)."""
    if features.n < 4:
        return []
    g = gram(features)
    sq = np.diag(g)
    dist = sq[:, None] + sq[None, :] - 2 * g
    found = []
    for m in range(features.n):
        bases = [b for b in np.argsort(dist[m]) if b != m][:bases_per_child]
        best = min((fit_merge(g, m, int(b)) for b in bases), key=lambda f: f.ratio)
        if len(best.parents) >= 2 and best.ratio < MAX_RATIO and best.residual < MAX_RESIDUAL:
            found.append(best)
    return drop_nested(found)


def drop_nested(fits: list[MergeFit]) -> list[MergeFit]:
    """A merge's parents are not themselves merges of it: keep the better-fitting one."""
    fits = sorted(fits, key=lambda f: f.ratio)
    kept: list[MergeFit] = []
    for f in fits:
        if not any(f.child in k.parents or k.child in f.parents for k in kept):
            kept.append(f)
    return kept
