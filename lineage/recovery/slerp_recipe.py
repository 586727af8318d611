"""SLERP recognised by its recipe: in every matrix, the two weights follow the sine rule.

SLERP (Shoemake; mergekit, lineage.merge.slerp) sets each tensor to s0 A + s1 B with
s0 = sin((1 - t) θ) / sin θ and s1 = sin(t θ) / sin θ, θ the angle between the two
tensors as they are (flattened), t in [0, 1] (one per merge, or per layer from a
gradient); where |cos θ| > 0.9995 it interpolates linearly, s0 + s1 = 1. Whatever t,
sine weights satisfy

    s0² + s1² + 2 s0 s1 cos θ = 1

(the interpolant of two unit vectors is a unit vector), one equation per matrix that
the per-matrix fit's two weights either meet or not. Another reading of the same child
is exact too and can sit in the tools' weight range: with a linear merge L = (A + B) / 2
of the same parents, S = 2 s0 L + (s1 - s0) B, every weight in [0, 1] for t > 1/2
(held-out 1023/2 and 1023/4: a SLERP read as the merge of the linear merge and one
parent). That reading misses the identity by about θ² (1 - t) / 2 in each matrix, so
the recipe tells the two apart wherever the parents are not nearly parallel; where
they are (the linear branch) both readings are linear, and the recipe reads neither.

Tolerance: the weights come from an exact fit (to ~1e-7); cos θ comes from the
sketches' Gram, exact for matrices of at most `width` elements and otherwise off by
about (1 - cos²) / sqrt(width) (README, "Sketch error"), which moves the identity by
2 |s0 s1| times that; MATCH_SIGMAS of it are allowed, as model stock's check does.
"""

from __future__ import annotations

import math

import numpy as np

from lineage.recovery.features import GroupFeatures
from lineage.recovery.model_stock import MATCH_SIGMAS

SLERP_RULE = "SLERP (per-matrix weights follow its sine rule)"
LINEAR_COS = 0.9995  # mergekit's DOT_THRESHOLD: above it SLERP interpolates linearly
EXACT_TOLERANCE = 1e-4  # the identity from exact weights and an exact cosine: ~1e-7
WEIGHT_SLACK = 1e-3  # float32 rounding of weights near 0 or 1 (layer_merges.PLAUSIBLE_SLACK)


def follows_slerp(features: GroupFeatures, grams: list[np.ndarray], a: int, b: int,
                  weights_a: list[float], weights_b: list[float], used: list[int]) -> bool:
    """The per-matrix weights of parents a and b (over `used` matrices, zero origin)
    are SLERP's in every matrix (in [0, 1], on the unit identity or, on the linear
    branch, summing to 1), and at least one matrix is not on the linear branch (there
    the linear reading and its mirrors are alike)."""
    curved = False
    for q, s0, s1 in zip(used, weights_a, weights_b, strict=True):
        cos = _cosine(grams[q], a, b)
        if cos is None or not (_in_unit(s0) and _in_unit(s1)):
            return False
        tolerance = EXACT_TOLERANCE
        width = features.sketches[q].shape[1]
        if features.numel[q] > width:
            tolerance += MATCH_SIGMAS * 2.0 * abs(s0 * s1) * (1.0 - cos**2) / math.sqrt(width)
        unit = abs(s0 * s0 + s1 * s1 + 2.0 * s0 * s1 * cos - 1.0) <= tolerance
        linear = abs(s0 + s1 - 1.0) <= tolerance
        if abs(cos) > LINEAR_COS:
            if not (linear or unit):
                return False
        elif not unit:
            return False
        else:
            curved = curved or not linear
    return curved


def _in_unit(weight: float) -> bool:
    """Sine weights at t in [0, 1] lie in [0, 1]; a reading of a parent from the merge
    and the other parent lies on the same great circle (the identity holds) but
    extrapolates, with a weight outside it."""
    return -WEIGHT_SLACK <= weight <= 1.0 + WEIGHT_SLACK


def _cosine(g: np.ndarray, a: int, b: int) -> float | None:
    norms = float(g[a, a]) * float(g[b, b])
    if norms <= 0.0:
        return None
    return float(np.clip(g[a, b] / math.sqrt(norms), -1.0, 1.0))
