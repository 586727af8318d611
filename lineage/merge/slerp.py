"""Spherical linear interpolation between two models (Shoemake 1985; as in mergekit).

The norms, the dot product and the angle are accumulated in float64: over tens of millions
of entries (an embedding matrix, an ``lm_head``) float32 sums of squares drift by 0.1-1%,
enough to push a true cosine of 0.997 past mergekit's colinearity threshold (or past 1),
which would silently turn SLERP into linear interpolation. The accumulation runs over
chunks so the float64 copies stay small whatever the tensor's size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from lineage.errors import SpecError

DOT_THRESHOLD = 0.9995  # mergekit: |cos| above this means (anti)colinear -> linear interpolation
EPS = 1e-8
CHUNK = 1 << 20  # entries upcast to float64 at a time


def _sums(v0: torch.Tensor, v1: torch.Tensor) -> tuple[float, float, float]:
    """(|v0|^2, |v1|^2, v0 . v1) accumulated in float64, chunk by chunk."""
    a, b = v0.reshape(-1), v1.reshape(-1)
    s00 = s11 = s01 = 0.0
    for i in range(0, a.numel(), CHUNK):
        x = a[i : i + CHUNK].to(torch.float64)
        y = b[i : i + CHUNK].to(torch.float64)
        s00 += float(torch.dot(x, x))
        s11 += float(torch.dot(y, y))
        s01 += float(torch.dot(x, y))
    return s00, s11, s01


def norm64(v: torch.Tensor) -> float:
    """|v| accumulated in float64 chunk by chunk (no float64 copy of the whole tensor)."""
    flat = v.reshape(-1)
    total = 0.0
    for i in range(0, flat.numel(), CHUNK):
        x = flat[i : i + CHUNK].to(torch.float64)
        total += float(torch.dot(x, x))
    return math.sqrt(total)


def slerp_cosine(v0: torch.Tensor, v1: torch.Tensor) -> float:
    """mergekit's cosine: each tensor divided by its norm only when the norm exceeds 1e-8."""
    s00, s11, s01 = _sums(v0, v1)
    n0, n1 = math.sqrt(s00), math.sqrt(s11)
    return s01 / ((n0 if n0 > EPS else 1.0) * (n1 if n1 > EPS else 1.0))


def slerp_weights(t: float, cos: float) -> tuple[float, float] | None:
    """SLERP coefficients (s0, s1) for the angle ``arccos(cos)``; None when the vectors
    are (anti)colinear (|cos| > 0.9995), where mergekit interpolates linearly."""
    if abs(cos) > DOT_THRESHOLD:
        return None
    theta = math.acos(cos)
    sin_theta = math.sin(theta)
    return math.sin(theta * (1 - t)) / sin_theta, math.sin(theta * t) / sin_theta


def slerp_pair(t: float, v0: torch.Tensor, v1: torch.Tensor) -> torch.Tensor:
    """Slerp between tensors ``v0`` (t=0) and ``v1`` (t=1) of the same shape.

    The angle is taken between the whole tensors flattened and the un-normalized tensors
    are combined (mergekit's slerp); only the final weighted sum is in the tensors' dtype.
    """
    weights = slerp_weights(t, slerp_cosine(v0, v1))
    if weights is None:
        return (1 - t) * v0 + t * v1
    s0, s1 = weights
    return s0 * v0 + s1 * v1


def slerp(base: torch.Tensor, tensors: Sequence[torch.Tensor], *, t: float) -> torch.Tensor:
    """Slerp from ``base`` (t = 0) to the single other model (t = 1); shapes [*shape]."""
    if len(tensors) != 1:
        raise SpecError(
            f"slerp with {len(tensors) + 1} models",
            "slerp interpolates exactly two models: base_model and one other",
            "List two models and name one of them base_model",
        )
    return slerp_pair(t, base, tensors[0])
