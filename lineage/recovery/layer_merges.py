"""Merges whose coefficients change from matrix to matrix: model stock (each tensor's
interpolation ratio comes from the angle between its task vectors), SLERP (each
tensor's sin-weights come from its own angle), and recipes with per-layer weights.

Per matrix q the child is still an exact combination of the same parents, with that
matrix's own coefficients: x_m,q - o_q = sum_k c_k,q (x_k,q - o_q), o the base's matrix
or zero (SLERP and model stock mix absolute weights, not task vectors). Exactness is
judged as in merges.py: each matrix's residual within the rounding bound of the models'
dtypes (a fine-tune's own new delta is orders of magnitude outside it in every matrix).
Only a few near models are tried as regressors, so a per-matrix fit never has more
unknowns than a sketch has dimensions. Coefficients may be negative in some matrices
(model stock's ratio 2 cos / (1 + cos) is negative where the task vectors point apart);
which reading of a dependency is the merge is settled by dependencies.py, which counts
coefficients outside (0, 1] against a reading.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from lineage.recovery.features import GroupFeatures
from lineage.recovery.merges import (
    MergeFit,
    Rounding,
    drop_weakest,
    nnls_on_gram,
    normal_equations,
)
from lineage.recovery.model_stock import MODEL_STOCK_RULE, model_stock_base
from lineage.recovery.slerp_recipe import SLERP_RULE, follows_slerp

REGRESSORS = 6  # nearest models a per-matrix fit may use (a merge sits near its parents)
BASES = 3  # nearest models tried as the origin, besides zero
# A per-matrix fit has a coefficient per matrix, so a dependency's mirror readings fit
# exactly too (with weights below 0 or above 1 on average). Merge tools average with
# weights in (0, 1] (model stock's ratio, SLERP's sin-weights, layer gradients), so the
# mean weight of every parent must lie there; the slack absorbs float32 rounding.
PLAUSIBLE_SLACK = 1e-3


def matrix_grams(features: GroupFeatures) -> list[np.ndarray]:
    """Per matrix, the uncentred [n, n] Gram of its sketches (float64)."""
    return [s @ s.T for s in features.sketches]


def fit_layerwise(grams: list[np.ndarray], features: GroupFeatures, rounding: Rounding,
                  child: int, base: int | None, regressors: list[int],
                  exact: list[frozenset[int]] | None = None,
                  inputs: dict[int, list[int]] | None = None) -> MergeFit | None:
    """The per-matrix fit of `child` around `base` (None: zero) on the fewest of
    `regressors` that still explain every matrix to rounding, or None when they do not
    or fewer than two are needed. Near models are nearly parallel in absolute weights,
    so a least-squares fit spreads small compensating coefficients over all of them;
    each is dropped, weakest first, when the rest stay exact without it. `exact`, when
    given, receives the members of every exact zero-origin dependency found, plausible
    or not (_recipe_readings reads them from their other members). `inputs`: per
    linear merge of the component, the models it averages (_expanded_recipe)."""
    fit = _exact(grams, features, rounding, child, base, regressors)
    if fit is None:
        return None
    keep, fit = drop_weakest(
        regressors, sorted(regressors, key=lambda k: fit[0][k]), fit,
        lambda rest: _exact(grams, features, rounding, child, base, rest))
    weights, worst, worst_bound, used = fit
    if len(keep) < 2:
        return None
    n = len(features.ids)
    stock = None
    if base is None and exact is not None:
        exact.append(frozenset([child, *keep]))
    if base is None:
        stock = model_stock_base(features, grams, child, sorted(keep), used, rounding.error)
        if stock is None:
            keep, (weights, worst, worst_bound, used), stock = _recipe_swap(
                grams, features, rounding, child, regressors, keep, fit)
        if stock is None and inputs:
            keep, (weights, worst, worst_bound, used), stock = _expanded_recipe(
                grams, features, rounding, child, keep, (weights, worst, worst_bound, used),
                inputs)
    slerp = None
    if stock is None:
        slerp = _slerp_reading(grams, features, rounding, child, keep, base, inputs)
    if slerp is not None:
        keep, (weights, worst, worst_bound, used) = slerp
    coefficients = {k: float(np.mean(weights[k + n])) for k in keep}
    if slerp is not None:
        return MergeFit(child, None, sorted(keep), [coefficients[k] for k in sorted(keep)],
                        float(worst), 1.0, bound=float(worst_bound), rule=SLERP_RULE)
    if stock is not None:  # the recipe, whatever the sign of its ratio
        tunes = sorted(k for k in keep if k != stock)
        return MergeFit(child, stock, tunes, [coefficients[k] for k in tunes],
                        float(worst), 1.0, bound=float(worst_bound), rule=MODEL_STOCK_RULE)
    if min(coefficients.values()) <= 0.0 or max(coefficients.values()) > 1.0 + PLAUSIBLE_SLACK:
        return None  # per-matrix freedom reads mirrors too: only a tool's range counts
    if base is None and not _in_range_per_matrix(weights, keep, n):
        return None
    return MergeFit(child, base, sorted(keep), [coefficients[k] for k in sorted(keep)],
                    float(worst), 1.0, bound=float(worst_bound),
                    rule="exact per-matrix combination (model stock, SLERP, layer-wise "
                    "weights); coefficients: mean over matrices")


def _in_range_per_matrix(weights: dict, keep: list[int], n: int) -> bool:
    """Every parent's weight in every matrix within [0, 1] (to the slack), asked of
    zero-origin fits: a SLERP's sin-weights and layer-wise linear weights are each in
    that range in every tensor, while a mirror's mean can fall inside it with single
    matrices outside (held-out 1025/1: a LoRA hub read as the per-matrix "merge" of a
    model stock and a SLERP of it with a task-arithmetic merge, weights 0.65-1.08 and
    -0.08-0.35, means 0.91 and 0.09). Over a base the weights are model stock's ratio,
    negative in a matrix where the task vectors point apart, so there only the mean is
    asked (1021/8: a model stock of three LoRA children at t ~ 0.01, read over its
    base by the mean where the recipe check did not confirm it)."""
    return all(-PLAUSIBLE_SLACK <= c <= 1.0 + PLAUSIBLE_SLACK
               for k in keep for c in weights[k + n])


def _slerp_reading(grams, features, rounding, child, keep, base, inputs):
    """(parents, fit) for a pair among the kept parents, the base and the models a kept
    linear merge averages, over which `child` is exact per matrix (zero origin) with
    weights that follow SLERP's sine rule (slerp_recipe.py); None if no pair does. A
    linear merge of the two parents stands in for one of them exactly (S = 2 s0 L +
    (s1 - s0) B), so the search can keep it, or it and their common base, instead."""
    n = len(features.ids)
    pool = set(keep) | ({base} if base is not None else set())
    for k in sorted(pool):
        pool |= set((inputs or {}).get(k, ()))
    pool.discard(child)
    for a, b in combinations(sorted(pool), 2):
        found = _exact(grams, features, rounding, child, None, [a, b])
        if found is not None and follows_slerp(features, grams, a, b, found[0][a + n],
                                               found[0][b + n], found[3]):
            return [a, b], found
    return None


def _recipe_swap(grams, features, rounding, child, regressors, keep, fit):
    """(parents, fit, model stock's base or None): the kept parents, or as many that are
    as exact and follow model stock's recipe. A merge among the regressors spans its own
    parents per matrix (a SLERP of two fine-tunes lies in their plane), so it can stand
    in for one of them and the dropping order decides which set is kept; a recipe holds
    for one set only, and a checked recipe outranks a range test (dependencies.py)."""
    trials = (sorted((set(keep) - {out}) | {into})
              for out in sorted(keep) for into in regressors if into not in keep)
    return _first_recipe(grams, features, rounding, child, trials) or (keep, fit, None)


def _expanded_recipe(grams, features, rounding, child, keep, fit, inputs):
    """(parents, fit, model stock's base or None): `keep` with a linear merge among them
    replaced by the models it averages, where that follows model stock's recipe. A
    model stock of fine-tunes F_i over B lies, per matrix, on the line from B to their
    mean; a linear merge of the same fine-tunes over B (task arithmetic at any scale)
    lies on that line too, so the per-matrix search explains the model stock by B and
    the linear merge, two parents no recipe is checked on, and the dependency of three
    reads as well with B as the "merge" of the other two (held-out 1018/6: the root
    read as a merge of its two merges at 0.98; 1020/2 the same through a linear
    average of two of the fine-tunes). Expanded, the recipe is checked on the fine-tunes
    themselves."""
    trials = (sorted((set(keep) - {k}) | set(inputs[k])) for k in sorted(keep) if k in inputs)
    return (_first_recipe(grams, features, rounding, child,
                          (t for t in trials if child not in t))
            or (keep, fit, None))


def _first_recipe(grams, features, rounding, child, trials):
    """(parents, fit, model stock's base) for the first of the `trials` parent sets that
    explains `child` exactly per matrix and follows model stock's recipe; None if none
    does."""
    for trial in trials:
        fit = _exact(grams, features, rounding, child, None, trial)
        if fit is None:
            continue
        stock = model_stock_base(features, grams, child, trial, fit[3], rounding.error)
        if stock is not None:
            return trial, fit, stock
    return None


def _exact(grams, features, rounding, child, base, regressors):
    """({k: summed |c| * |x_k| (how much k carries), k + n: [c per matrix]}, worst
    relative residual, its bound, the matrices fitted), or None when some matrix is not
    explained to rounding."""
    n = len(features.ids)
    norms = np.sqrt(np.maximum(features.sq_norms, 0.0))  # [n, M]
    carried = {k: 0.0 for k in regressors} | {k + n: [] for k in regressors}
    worst, worst_bound, used = 0.0, 0.0, []
    for q, g in enumerate(grams):
        if base is not None and features.hashes[child, q] == features.hashes[base, q]:
            continue  # this matrix was left at the base: nothing to explain
        if any(features.hashes[child, q] == features.hashes[k, q] for k in regressors):
            # The child's matrix is a regressor's, bit for bit (a LoRA leaves most
            # matrices as they were): any weights summing to one fit it, so the
            # matrix says nothing about the coefficients, and counting it would
            # average an implausible reading (2 and -1 elsewhere) into the range.
            continue
        ata, aty, yy = normal_equations(g, child, base, regressors)
        if yy <= 0.0:
            continue
        noise = float(max(rounding.error[k] * norms[k, q] for k in regressors))
        if base is not None:
            noise += float(rounding.error[base] * norms[base, q])
        coef, resid = nnls_on_gram(ata, aty, yy, nonneg=False, noise=noise)
        terms = {child: 1.0, **{k: float(c) for k, c in zip(regressors, coef, strict=True)}}
        if base is not None:
            terms[base] = terms.get(base, 0.0) + 1.0 - float(coef.sum())
        bound = sum(abs(c) * rounding.error[t] * norms[t, q] for t, c in terms.items())
        if resid > bound:
            return None
        scale = np.sqrt(np.maximum(np.diag(ata), 0.0))
        used.append(q)
        for k, c, sc in zip(regressors, coef, scale, strict=True):
            carried[k] += abs(float(c)) * float(sc)
            carried[k + n].append(float(c))
        if resid / np.sqrt(yy) >= worst:
            worst, worst_bound = resid / np.sqrt(yy), bound / np.sqrt(yy)
    if not used:
        return None  # no matrix the regressors do not already hold: no evidence
    return carried, worst, worst_bound, used


def _likely_parents(whole: np.ndarray, child: int, base: int | None, near: list[int]
                    ) -> list[int]:
    """The models a whole-model fit leans on most, then the nearest: a SLERP or model
    stock of two far-apart models sits between them, near neither, but an average over
    all matrices already puts its weight on them."""
    others = [k for k in near if k != base]
    ata, aty, yy = normal_equations(whole, child, base, others)
    coef, _ = nnls_on_gram(ata, aty, yy)
    carried = coef * np.sqrt(np.maximum(np.diag(ata), 0.0))
    ranked = [others[i] for i in np.argsort(-carried, kind="stable") if coef[i] > 0]
    picked = ranked[:REGRESSORS - 2]
    return picked + [k for k in others if k not in picked][:REGRESSORS - len(picked)]


def no_layerwise_fit(grams: list[np.ndarray], features: GroupFeatures,
                     rounding: Rounding) -> bool:
    """True when no per-matrix fit can be exact: merges.no_exact_fit, per matrix, so
    that a large group's thousands of merge-free components skip every fit.

    Every fit of matrix q reads sum_t a_t x_t,q with a_child = 1 (a sum-zero a with a
    base, a free one without) and holds it to sum_t |a_t| error_t ||W_t,q||, which is at
    most sqrt(n) max_t(error_t ||W_t,q||) ||a||; the residual is at least
    sqrt(lambda_min(G_q)) ||a|| (on any subset of models too: a principal submatrix's
    lowest eigenvalue is no lower). A fit skips q only where the child's matrix equals
    its base's, so one matrix that no two models share and whose lambda_min is above
    that bound (twice, for float rounding in the fits) leaves every fit outside it."""
    n = features.n
    norms = np.sqrt(np.maximum(features.sq_norms, 0.0))  # [n, M]
    for q, g in enumerate(grams):
        if len(set(features.hashes[:, q].tolist())) < n:
            continue  # some child may skip this matrix
        floor = 2.0 * np.sqrt(n) * float((rounding.error * norms[:, q]).max())
        if float(np.linalg.eigvalsh(g)[0]) > floor**2:
            return True
    return False


def layerwise_merges(features: GroupFeatures, rounding: Rounding, dist: np.ndarray,
                     skip: set[int], inputs: dict[int, list[int]] | None = None
                     ) -> list[MergeFit]:
    """Per-matrix merges of the component's models not already explained (`skip`);
    `inputs`: per plausible linear merge, the models it averages (fit_layerwise)."""
    if features.n < 3:
        return []
    grams = matrix_grams(features)
    if no_layerwise_fit(grams, features, rounding):
        return []
    whole = np.sum(grams, axis=0)  # the uncentred Gram over all matrices
    found: list[MergeFit] = []
    exact: list[frozenset[int]] = []
    for m in range(features.n):
        if m in skip:
            continue
        near = [int(k) for k in np.argsort(dist[m], kind="stable") if k != m]
        fits = []
        for base in [None, *near[:BASES]]:
            regressors = _likely_parents(whole, m, base, near)
            fit = fit_layerwise(grams, features, rounding, m, base, regressors, exact,
                                inputs)
            if fit is not None:
                fits.append(fit)
        if fits:  # an absolute (zero-origin) reading first: it names every input, and a
            # parent that is the others' ancestor is reported as the base after placement
            found.append(min(fits, key=lambda f: (f.base is not None, len(f.parents),
                                                  f.residual)))
    return found + _recipe_readings(grams, features, rounding, found, exact,
                                    _with_combined(inputs, found))


def _with_combined(inputs: dict[int, list[int]] | None, found: list[MergeFit]
                   ) -> dict[int, list[int]]:
    """`inputs` and, for every zero-origin per-matrix merge found (a SLERP, layer-wise
    weights), the models it combines. A SLERP of two fine-tunes is, matrix by matrix,
    a combination of the two, so a model stock of the same fine-tunes over B is exact
    over B, the SLERP and one fine-tune, where no recipe holds; the recipe is checked
    on the fine-tunes only once the SLERP is expanded into them. Without that, the
    base read as the "merge" of the model stock and the SLERP (held-out 1025/7: a root
    read at 0.98 as the merge of its own two merges, over one of its LoRA children)."""
    combined = {f.child: sorted(f.parents) for f in found
                if f.base is None and f.rule != MODEL_STOCK_RULE}
    return {**combined, **(inputs or {})}


def _recipe_readings(grams: list[np.ndarray], features: GroupFeatures, rounding: Rounding,
                     found: list[MergeFit], exact: list[frozenset[int]],
                     inputs: dict[int, list[int]] | None = None) -> list[MergeFit]:
    """Model stock readings of the dependencies found with another member as the child.

    A per-matrix dependency holds whichever member is read as the child, and the search
    meets it from the member whose near models include the others: model stock at a
    small ratio t sits on its base, so its far fine-tunes are not among its likely
    parents, while the base's are the merge and those fine-tunes, and the base is then
    read as the "merge" (weights 1 / (1 - t) and -t / (N (1 - t)), whose means over
    matrices fall inside (0, 1] where t changes sign, or outside it and no fit is kept
    at all). Each other member of every exact dependency is tried as the child of the
    rest; a reading that follows the recipe is added, and dependencies.py ranks it
    first."""
    known = {f.child for f in found}
    read = {f.members for f in found if f.rule == MODEL_STOCK_RULE}
    dependencies = {f.members: f.child for f in found if f.members not in read}
    for members in exact:  # exact but outside the range: the mirror of a recipe, maybe
        if members not in read:
            dependencies.setdefault(members, -1)
    extra = []
    for members, met_from in dependencies.items():
        for child in sorted(members - {met_from} - known):
            rest = sorted(members - {child})
            reading = fit_layerwise(grams, features, rounding, child, None, rest,
                                    inputs=inputs)
            # One recipe reading per dependency: for two fine-tunes whose task vectors
            # are about as long, the mirror (the base as model stock of the same
            # fine-tunes over the merge) follows the recipe too (cos' = -cos exactly
            # at equal norms, so 2 cos' / (1 + cos') = -t / (1 - t)); the first
            # reading found, with the member the search met the dependency from
            # left out, stands.
            if (reading is not None and reading.rule == MODEL_STOCK_RULE
                    and reading.members not in read):
                extra.append(reading)
                known.add(child)
                read.add(reading.members)
    return extra
