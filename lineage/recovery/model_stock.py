"""Model stock recognised by its recipe, whatever the sign of its ratio.

Model stock (Jang et al. 2024; mergekit) sets each tensor to t * mean(F_i) + (1 - t) * B,
t = N cos / (1 + (N - 1) cos), cos the mean pairwise cosine of the task vectors
F_i - B in that tensor. Where those point apart (cos < 0: fine-tunes on unrelated
tasks), t is negative: the merge steps from the base away from the fine-tunes, and its
per-matrix weights leave the (0, 1] range merge tools otherwise use. Its mirror reading
(the base as an average of the merge and the fine-tunes: 1 / (1 - t) and -t / (N (1 - t))
each) then has every weight inside (0, 1], so a range test alone keeps the mirror and
calls a root the merge of its own children.

The recipe decides instead. Over a candidate base o, each matrix of the child is
o + t_q (mean(F) - o) to rounding (one parameter per matrix: t_q = <F - o, M - o> /
|F - o|^2 with F the fine-tunes' mean), and t_q equals the formula's t at the cosine
the sketches give around o. Count-sketches are exact for matrices of at most `width`
elements, so there t_q must match to the precision of recipe numbers (WEIGHT_TOLERANCE;
measured matches are ~1e-5); on larger ones the sketched cosine is off by about
(1 - cos^2) / sqrt(width) (README, "Sketch error"), so t_q may differ by MATCH_SIGMAS times
that error carried through dt/dcos = N / (1 + (N - 1) cos)^2. The mirror fails the check
(its ratio is -t / (1 - t) and the cosine around the merge is another number), so one
reading of the dependency is the recipe's. Except for two fine-tunes whose task vectors
are about as long: around the merge their cosine is exactly -cos at equal norms, so the
mirror's ratio -t / (1 - t) is the formula's too, and the recipe cannot tell the two
readings apart (layer_merges._recipe_readings keeps the first one found). The per-matrix
fit that found the dependency has already held every matrix to its rounding bound.
"""

from __future__ import annotations

import numpy as np

from lineage.recovery.features import GroupFeatures

MODEL_STOCK_RULE = "model stock (per-matrix weights follow its angle formula)"
WEIGHT_TOLERANCE = 5e-4  # per-matrix weights are recovered to ~1e-7; recipes state
# their numbers to a few decimals: equal to 3 decimals is equal (as orient.WEIGHT_DIGITS)
MATCH_SIGMAS = 4.0  # sketched-cosine errors beyond 4 standard deviations: < 1e-4 each


def model_stock_base(features: GroupFeatures, grams: list[np.ndarray], child: int,
                     members: list[int], matrices: list[int], error: np.ndarray
                     ) -> int | None:
    """The base o when `child`, an exact per-matrix combination of `members` (zero
    origin) over `matrices`, is model stock of the other members over o, else None.
    `error`: per model, the relative rounding error of its values (merges.Rounding)."""
    if len(members) < 3:
        return None
    for o in members:
        tunes = [k for k in members if k != o]
        if _follows_formula(features, grams, child, o, tunes, matrices, error):
            return o
    return None


def _on_the_line(features: GroupFeatures, q: int, child: int, o: int, tunes: list[int],
                 line: tuple[float, float, float], t: float, error: np.ndarray) -> bool:
    """M - o = t (mean(F) - o) in matrix q to rounding: the recipe gives every fine-tune
    the same weight t / N. The exact per-matrix fit gives each its own weight, so a
    ratio that matches the formula by chance (a fine-tune read as the "merge" of its
    base and a model stock that sits on it: cos ~ 1, t ~ 1, and the projection of one
    independent task vector on another's mirror is ~1 too) is refused here. Sketches
    are linear, so an exact relation stays exact in them. `line`: _line's products."""
    n = len(tunes)
    xx, xy, yy = line
    residual = np.sqrt(max(yy - 2.0 * t * xy + t * t * xx, 0.0))
    norms = np.sqrt(np.maximum(features.sq_norms[:, q], 0.0))
    bound = (error[child] * norms[child] + abs(1.0 - t) * error[o] * norms[o]
             + sum(abs(t) / n * error[k] * norms[k] for k in tunes))
    return residual <= 2.0 * bound  # twice: float rounding in the Gram arithmetic


def _follows_formula(features: GroupFeatures, grams: list[np.ndarray], child: int,
                     o: int, tunes: list[int], matrices: list[int], error: np.ndarray
                     ) -> bool:
    n = len(tunes)
    for q in matrices:
        g = grams[q]
        cos = float(np.mean([_cosine(g, o, a, b) for i, a in enumerate(tunes)
                             for b in tunes[i + 1:]]))
        if not -1.0 < cos <= 1.0 or abs(1.0 + (n - 1) * cos) < 1e-12:
            return False
        formula = n * cos / (1.0 + (n - 1) * cos)
        width = features.sketches[q].shape[1]
        tolerance = WEIGHT_TOLERANCE
        if features.numel[q] > width:  # sketched, not exact
            slope = n / (1.0 + (n - 1) * cos) ** 2
            tolerance += MATCH_SIGMAS * slope * (1.0 - cos**2) / np.sqrt(width)
        line = _line(g, child, o, tunes)
        ratio = line[1] / max(line[0], 1e-300)  # t minimising |(M - o) - t (mean(F) - o)|
        if abs(ratio - formula) > tolerance:
            return False
        if not _on_the_line(features, q, child, o, tunes, line, ratio, error):
            return False
    return True


def _line(g: np.ndarray, child: int, o: int, tunes: list[int]) -> tuple[float, float, float]:
    """(|F - o|^2, <F - o, M - o>, |M - o|^2) in one matrix, F the fine-tunes' mean,
    from its Gram matrix."""
    n = len(tunes)
    xx = sum(_inner(g, o, a, b) for a in tunes for b in tunes) / n**2
    xy = sum(_inner(g, o, a, child) for a in tunes) / n
    return xx, xy, _inner(g, o, child, child)


NORM_PRODUCT_FLOOR = 1e-6  # the tools' own guard: |a| |b| is clamped to at least this
# before dividing, so a fine-tune that barely moved (|F - o| ~ 1e-4 in a small tensor)
# enters the recipe with a cosine shrunk toward 0, and the check must shrink it the same


def _cosine(g: np.ndarray, o: int, a: int, b: int) -> float:
    """cos(x_a - x_o, x_b - x_o) from an uncentred Gram matrix, as the recipe computes it."""
    aa, bb = _inner(g, o, a, a), _inner(g, o, b, b)
    cos = _inner(g, o, a, b) / max(np.sqrt(max(aa * bb, 0.0)), NORM_PRODUCT_FLOOR)
    return float(np.clip(cos, -1.0, 1.0))


def _inner(g: np.ndarray, o: int, a: int, b: int) -> float:
    """<x_a - x_o, x_b - x_o> from a Gram matrix."""
    return float(g[a, b] - g[a, o] - g[b, o] + g[o, o])
