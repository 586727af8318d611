"""Spherical linear interpolation between two models (Shoemake 1985; as in mergekit)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lineage.errors import SpecError

DOT_THRESHOLD = 0.9995  # |cos| above this: the vectors are (anti)colinear, fall back to lerp
EPS = 1e-8


def slerp_pair(t: float, v0: torch.Tensor, v1: torch.Tensor) -> torch.Tensor:
    """Slerp between tensors ``v0`` (t=0) and ``v1`` (t=1) of the same shape.

    The angle is taken between the whole tensors flattened; each is normalized only if
    its norm exceeds 1e-8, and the un-normalized tensors are combined (mergekit's slerp).
    """
    n0, n1 = v0.norm(), v1.norm()
    u0 = v0 / n0 if n0 > EPS else v0
    u1 = v1 / n1 if n1 > EPS else v1
    dot = (u0 * u1).sum()
    if dot.abs() > DOT_THRESHOLD:
        return (1 - t) * v0 + t * v1
    theta0 = torch.arccos(dot)
    s0 = torch.sin(theta0 * (1 - t)) / torch.sin(theta0)
    s1 = torch.sin(theta0 * t) / torch.sin(theta0)
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
