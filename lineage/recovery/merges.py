"""Merges: a child that is an exact combination of other models of its component.

For a candidate child m and base b, fit  S(m) - S(b) ~ sum_k c_k (S(p_k) - S(b)),  c >= 0
(NNLS over every other model of the component; sketches are linear, so this is the fit
on the weights themselves). A merge tool computes the child from the stored parents,
so the fit is exact up to rounding: the child's storage in its dtype, the tool's float32
arithmetic and the sketches' float32 storage. rounding.py bounds each, so a fit is
accepted when its residual is inside that bound (nothing tuned on a zoo): a fine-tune's
own new delta, or a root "explained" by its children's average, is orders of magnitude
outside it. A parent counts when its term is larger than the bound too.

A linear dependency among models can be read with any member as the child: if
M = B + a (F1 - B) + b (F2 - B), then B is also a combination of M, F1 and F2 (the
"mirror merge"). One dependency gets one explanation (dependencies.py chooses it).
When the coefficients sum to 1 (within rounding) the base drops out: a weighted average
of the parents, whatever base was tried.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

import numpy as np
from scipy.optimize import nnls

from lineage.recovery.features import GroupFeatures
from lineage.recovery.rounding import COMPUTE_BITS, unit_roundoff

Fit = TypeVar("Fit")

SKETCH_ROUNDING = 2.0 ** -(COMPUTE_BITS + 1)  # float32 storage of every sketch entry
BASES_PER_CHILD = 6  # nearest models tried as the base (a merge sits near its parents'
# common ancestor; the fit with any other base is the same dependency)


@dataclass(frozen=True)
class MergeFit:
    child: int
    base: int | None  # None: a weighted average, no base involved
    parents: list[int]
    coefficients: list[float]
    residual: float  # ||unexplained|| / ||S(m) - S(b)|| with all parents
    single_residual: float  # the same with the best single parent
    rule: str = "exact linear combination (NNLS on sketched task vectors)"
    bound: float = 0.0  # the rounding bound the residual was held to (same units)
    card_posterior: float | None = None  # set when cards chose among equal readings
    fallback: bool = False  # kept only if the child's first reading contradicts others

    @property
    def members(self) -> frozenset[int]:
        """The models of the linear dependency this fit reads."""
        base = () if self.base is None else (self.base,)
        return frozenset((self.child, *base, *self.parents))

    @property
    def ratio(self) -> float:
        return self.residual / max(self.single_residual, 1e-12)

    def to_evidence(self, ids: list[str]) -> dict:
        return {
            "rule": self.rule,
            "base": None if self.base is None else ids[self.base],
            "coefficients": {ids[p]: round(c, 4) for p, c in
                             zip(self.parents, self.coefficients, strict=True)},
            "residual": round(self.residual, 6),
            "rounding_bound": round(self.bound, 6),
            "best_single_residual": round(self.single_residual, 4),
            **({} if self.card_posterior is None else
               {"chosen_by": "cards", "card_posterior": round(self.card_posterior, 4)}),
        }


def gram(features: GroupFeatures) -> np.ndarray:
    """[n, n] inner products of the models' concatenated matrix sketches (every element
    weighs the same, as in ||W_i - W_j||), centred for float stability."""
    x = np.concatenate(features.sketches, axis=1)
    x = x - x.mean(axis=0, keepdims=True)
    return x @ x.T


def gram_sq_dists(g: np.ndarray) -> np.ndarray:
    """[n, n] squared distances ||x_i - x_j||^2 from a Gram matrix."""
    sq = np.diag(g)
    return sq[:, None] + sq[None, :] - 2 * g


@dataclass(frozen=True)
class Rounding:
    """Per model: the norm of its weights and the relative error of its stored values."""

    norms: np.ndarray  # [n] ||W|| over the group's matrices (exact, from the moments)
    error: np.ndarray  # [n] relative error bound: dtype storage + sketch + arithmetic

    @classmethod
    def of(cls, features: GroupFeatures, dtypes: list[str | None]) -> Rounding:
        norms = np.sqrt(features.sq_norms.sum(axis=1))
        stored = np.array([unit_roundoff(d) for d in dtypes])
        return cls(norms, stored + 2.0 * SKETCH_ROUNDING)

    def bound(self, terms: dict[int, float]) -> float:
        """Triangle-inequality bound on the residual of sum_t coef_t * x_t."""
        return float(sum(abs(c) * self.error[t] * self.norms[t] for t, c in terms.items()))


def fit_merge(g: np.ndarray, child: int, base: int, rounding: Rounding | None = None,
              exclude: frozenset[int] = frozenset()) -> MergeFit:
    """Fit child - base on every other model's task vector (but `exclude`'s), from the
    Gram matrix only.

    With A = [x_k - x_b] and y = x_m - x_b: A^T A = L L^T (Cholesky), and
    ||A c - y||^2 = ||L^T c - z||^2 + |y|^2 - |z|^2 with z = L^-1 A^T y, so NNLS runs on
    a K x K system whatever the sketch width."""
    n = g.shape[0]
    cols = np.array([k for k in range(n) if k not in (child, base) and k not in exclude])
    ata, aty, yy = normal_equations(g, child, base, cols)
    yy = max(yy, 1e-300)
    diag = np.maximum(np.diag(ata), 1e-300)
    noise = None
    if rounding is not None:  # each column's own rounding: x_k's and the base's
        noise = float((rounding.error[cols] * rounding.norms[cols]).max()
                      + rounding.error[base] * rounding.norms[base])
    coef, resid_abs = nnls_on_gram(ata, aty, yy, noise=noise)
    single = np.sqrt(max(0.0, 1.0 - float((np.maximum(aty, 0.0) ** 2 / diag).max()) / yy))
    terms = {child: 1.0, base: 1.0 - coef.sum(), **{int(cols[k]): float(coef[k])
                                                    for k in np.flatnonzero(coef)}}
    bound = rounding.bound(terms) if rounding is not None else 0.0
    keep = [k for k in np.argsort(-coef * np.sqrt(diag))
            if coef[k] > 0 and coef[k] * np.sqrt(diag[k]) > bound]
    sum_free = rounding is not None and _base_free(coef, rounding, base, bound)
    return MergeFit(child, None if sum_free else base, [int(cols[k]) for k in keep],
                    [float(coef[k]) for k in keep], float(resid_abs / np.sqrt(yy)),
                    float(single), bound=float(bound / np.sqrt(yy)))


def normal_equations(g: np.ndarray, child: int, base: int | None, cols
                     ) -> tuple[np.ndarray, np.ndarray, float]:
    """(A^T A, A^T y, |y|^2) for y = x_child - o on A = [x_k - o] over `cols`, o = x_base
    or 0, from a Gram matrix."""
    c = np.asarray(cols)
    if base is None:
        return g[np.ix_(c, c)], g[c, child], float(g[child, child])
    gb = g[:, base]
    ata = g[np.ix_(c, c)] - gb[c][:, None] - gb[c][None, :] + g[base, base]
    aty = g[c, child] - gb[c] - g[base, child] + g[base, base]
    return ata, aty, float(g[child, child] - 2 * g[base, child] + g[base, base])


def nnls_on_gram(ata: np.ndarray, aty: np.ndarray, yy: float, *, nonneg: bool = True,
                 noise: float | None = None) -> tuple[np.ndarray, float]:
    """(c minimising ||A c - y||, c >= 0 unless `nonneg` is False; the residual norm)
    from A^T A, A^T y and |y|^2. `noise`: the rounding norm of one column."""
    # Columns dependent up to rounding (two siblings and their average, whose task
    # vectors against it are exactly opposite) span a direction no larger than their
    # rounding; fitting along it gives huge cancelling coefficients. A ridge at that
    # floor (or float64's, for near-parallel absolute weights) keeps such directions
    # at zero and changes nothing a real combination needs.
    vals, vecs = np.linalg.eigh((ata + ata.T) / 2.0)
    floor = 1e-13 * max(float(vals.max()), 1e-300)
    if noise is not None:  # K columns of rounding noise span at most K * noise^2
        floor = max(floor, 4.0 * len(aty) * noise**2)
    ridged = np.maximum(vals, 0.0) + floor
    root = np.sqrt(ridged)[:, None] * vecs.T  # [K, K]: root^T root = A^T A + floor I
    z = (vecs.T @ aty) / np.sqrt(ridged)
    if nonneg:
        coef = _polish(nnls(root, z)[0], ata, aty, floor)
    else:
        coef = np.linalg.lstsq(root, z, rcond=None)[0]
    return coef, float(np.sqrt(max(yy - 2.0 * coef @ aty + coef @ ata @ coef, 0.0)))


def _polish(coef: np.ndarray, ata: np.ndarray, aty: np.ndarray, floor: float
            ) -> np.ndarray:
    """NNLS stops at its own tolerance (~1e-6 relative, the size of float32 rounding);
    re-solve the normal equations exactly on its active set so an exact fit reads as
    exact. Kept only if the active columns are independent above `floor` (else the
    exact solve would amplify rounding) and every coefficient stays positive."""
    active = np.flatnonzero(coef > 0)
    if active.size == 0:
        return coef
    sub = ata[np.ix_(active, active)]
    if float(np.linalg.eigvalsh((sub + sub.T) / 2.0).min()) <= floor:
        return coef
    try:
        exact = np.linalg.solve(sub, aty[active])
    except np.linalg.LinAlgError:
        return coef
    if (exact <= 0).any():
        return coef
    out = np.zeros_like(coef)
    out[active] = exact
    return out


def _base_free(coef: np.ndarray, rounding: Rounding, base: int, bound: float) -> bool:
    """The base's net coefficient (1 - sum c) moves the child by less than rounding:
    the fit is a weighted average of the parents and any base would do."""
    return abs(1.0 - coef.sum()) * rounding.norms[base] <= bound


@lru_cache(maxsize=64)
def sum_zero_basis(n: int) -> np.ndarray:
    """[n, n - 1] orthonormal basis of the sum-zero subspace (the same for every
    component of n models: a large group has thousands of them)."""
    basis = np.linalg.qr(np.eye(n) - 1.0 / n)[0][:, : n - 1]
    basis.setflags(write=False)
    return basis


def no_exact_fit(g: np.ndarray, rounding: Rounding) -> bool:
    """True when no fit of any child on any base can be exact: a screen that reads the
    same as running every fit, at the cost of one eigendecomposition.

    Every fit's residual is ||sum_t a_t x_t|| with sum_t a_t = 0 and a_child = 1, and its
    bound is sum_t |a_t| error_t norm_t <= max(error * norm) sqrt(n) ||a||. On the
    sum-zero subspace (the Gram matrix is centred: that subspace is where it lives)
    ||sum a_t x_t|| >= sigma_min ||a||, so sigma_min above sqrt(n) max(error * norm)
    (twice, for float rounding in the fits) leaves every residual outside its bound.
    Independent fine-tunes keep sigma_min at the size of their own increments, orders
    of magnitude above rounding; a merge makes it zero."""
    n = g.shape[0]
    basis = sum_zero_basis(n)
    lowest = float(np.linalg.eigvalsh(basis.T @ g @ basis)[0])
    floor = 2.0 * np.sqrt(n) * float((rounding.error * rounding.norms).max())
    return lowest > floor**2


def accepted(fit: MergeFit) -> bool:
    """Exact to rounding, with at least two parents carrying weight."""
    return len(fit.parents) >= 2 and fit.residual <= fit.bound


def candidate_merges(features: GroupFeatures, dtypes: list[str | None],
                     rounding: Rounding | None = None) -> list[MergeFit]:
    """Every exact fit of every model on its nearest bases (mirrors included: see
    dependencies.choose_explanations). `rounding`: Rounding.of(features, dtypes), when
    the caller already has it."""
    if features.n < 3:
        return []
    g = gram(features)
    rounding = rounding or Rounding.of(features, dtypes)
    if no_exact_fit(g, rounding):
        return []
    dist = gram_sq_dists(g)
    found = []
    for m in range(features.n):
        near = [int(b) for b in np.argsort(dist[m], kind="stable") if b != m][:BASES_PER_CHILD]
        fits = [(fit_merge(g, m, b, rounding), b) for b in near]
        good = [fewest_parents(g, f, b, rounding) for f, b in fits if accepted(f)]
        other = None if good else affine_base(g, m, rounding)
        if other is not None and other not in near:
            fit = fit_merge(g, m, other, rounding)
            good = [fewest_parents(g, fit, other, rounding)] if accepted(fit) else []
        if good:
            found.append(min(good, key=lambda f: (f.residual, len(f.parents))))
    return found


def affine_base(g: np.ndarray, child: int, rounding: Rounding) -> int | None:
    """The model with the lowest weight when `child` is an exact affine combination of
    all the others (weights summing to one, any sign), else None: task arithmetic's
    base enters with 1 - k lambda, below every parent's lambda. The nearest models are
    tried as bases first, but a merge sits near its parents' common ancestor only when
    they moved little against their siblings: in a wide star of fine-tunes the base of
    a task-arithmetic merge of three of them was not among the merge's six nearest
    models, and no fit over those was exact (held-out 1022/5: the merge was read as a
    fine-tune). The affine combination is the same for every reference model, so one
    least-squares fit finds the base wherever it is; it is tried where no nearest model
    gave an exact fit (elsewhere the nearest bases' fit stands, as before)."""
    n = g.shape[0]
    if n < 4:
        return None
    ref = 0 if child != 0 else 1
    cols = np.array([k for k in range(n) if k not in (child, ref)])
    ata, aty, yy = normal_equations(g, child, ref, cols)
    yy = max(yy, 1e-300)
    noise = float((rounding.error[cols] * rounding.norms[cols]).max()
                  + rounding.error[ref] * rounding.norms[ref])
    coef, resid = nnls_on_gram(ata, aty, yy, nonneg=False, noise=noise)
    weights = {int(k): float(c) for k, c in zip(cols, coef, strict=True)}
    weights[ref] = 1.0 - float(coef.sum())
    if resid > rounding.bound({child: 1.0, **{k: -w for k, w in weights.items()}}):
        return None
    return min(weights, key=lambda k: (weights[k], k))


def copies_to_rounding(features: GroupFeatures, rounding: Rounding) -> set[int]:
    """Models that differ from some other model by no more than the two's rounding: a
    copy of it as far as the weights can tell (a LoRA child whose B barely left zero;
    SGD at 1e-5 for a few steps). No merge is read with such a model as the child: any
    split of its weight between the model it copies and a near-copy of that fits to
    rounding, on the sketches and per matrix alike (0.5 and 0.5 of two near-copies
    over a third model, at confidence 0.98, on a held-out draw), so a merge claimed
    there is read from nothing."""
    if features.n < 2:
        return set()
    gaps = np.sqrt(np.maximum(gram_sq_dists(gram(features)), 0.0))
    slack = rounding.error * rounding.norms
    close = gaps <= slack[:, None] + slack[None, :]
    np.fill_diagonal(close, False)
    return {int(m) for m in np.flatnonzero(close.any(axis=1))}


def drop_weakest(parents: Sequence[int], weakest_first: Iterable[int], fit: Fit,
                 refit: Callable[[list[int]], Fit | None]) -> tuple[list[int], Fit]:
    """(the parents kept, their fit): `parents` (explaining the child as `fit`) with
    each one dropped, weakest first, when `refit` of the rest still explains the child
    (returns a fit, not None); at least two are kept. For fits on an explicit parent
    list (layer_merges, sparse_merges); fewest_parents refits on every model but the
    dropped ones, whose parents come out of the fit itself."""
    keep = list(parents)
    for k in weakest_first:
        rest = [j for j in keep if j != k]
        if len(rest) < 2:
            break
        smaller = refit(rest)
        if smaller is not None:
            keep, fit = rest, smaller
    return keep, fit


def fewest_parents(g: np.ndarray, fit: MergeFit, base: int, rounding: Rounding) -> MergeFit:
    """The accepted fit (made over `base`) with every parent the others explain dropped,
    smallest term first, while it stays exact. A near-copy of a parent (its child after
    a few tiny steps) spans almost the same task vector, so a fit can split one
    coefficient between the two (0.4998 and 0.0002) within rounding; a merge tool
    used one of them."""
    out, dropped = fit, frozenset()
    for p in reversed(fit.parents):  # kept largest term first: try the smallest first
        if len(out.parents) <= 2:
            break
        trial = fit_merge(g, fit.child, base, rounding, dropped | {p})
        if accepted(trial) and len(trial.parents) < len(out.parents):
            out, dropped = trial, dropped | {p}
    return out
