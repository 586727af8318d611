"""Weighted averages: linear (Wortsman et al. 2022, "model soups") and Fisher-weighted
averaging (Matena & Raffel 2022).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _stack_weights(weight: Sequence[float], like: torch.Tensor) -> torch.Tensor:
    """Weights [T] shaped [T, 1, ..., 1] to broadcast against stacked tensors [T, *shape]."""
    return torch.tensor(list(weight), dtype=like.dtype).reshape(-1, *([1] * (like.dim() - 1)))


def linear(
    base: torch.Tensor | None,
    tensors: Sequence[torch.Tensor],
    *,
    weight: Sequence[float],
    normalize: bool = True,
) -> torch.Tensor:
    """``sum_i w_i theta_i`` (divided by ``sum_i w_i`` when ``normalize``); [*shape] each.

    Same as mergekit's ``linear``: the base model only takes part if listed in ``models``.
    """
    stacked = torch.stack(list(tensors))
    w = _stack_weights(weight, stacked)
    out = (stacked * w).sum(dim=0)
    return out / w.sum() if normalize else out


def fisher_average(
    base: torch.Tensor | None,
    tensors: Sequence[torch.Tensor],
    *,
    weight: Sequence[float],
    fisher: Sequence[torch.Tensor],
    fisher_floor: float = 1e-6,
) -> torch.Tensor:
    """Fisher-weighted average, per parameter (Matena & Raffel, NeurIPS 2022):

        theta = sum_i w_i (F_i + floor) theta_i / sum_i w_i (F_i + floor)

    ``fisher`` holds each model's diagonal Fisher with the tensor's shape. The floor
    (their ``fisher_floor``) keeps parameters with zero Fisher everywhere at the plain
    weighted average instead of 0/0.
    """
    stacked = torch.stack(list(tensors))
    w = _stack_weights(weight, stacked)
    f = torch.stack([x.to(stacked.dtype) for x in fisher]) + fisher_floor
    return (w * f * stacked).sum(dim=0) / (w * f).sum(dim=0)


def passthrough(base: torch.Tensor | None, tensors: Sequence[torch.Tensor], *,
                scale: float = 1.0) -> torch.Tensor:
    """mergekit's passthrough: the single source's tensor (times ``scale``), as used by
    frankenmerges that stack layer ranges of models with ``slices:``."""
    (only,) = tensors
    return only * scale if scale != 1.0 else only
