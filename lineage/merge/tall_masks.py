"""TALL masks and consensus merging (Wang, Dimitriadis et al., ICML 2024, "Localizing Task
Information for Improved Model Merging and Compression"), per tensor.

    tau_t    = theta_t - theta_0                              [T, *shape]
    tau_MTL  = sum_t w_t tau_t   (or the TIES merge of the tau_t)
    m_t      = |tau_t| >= lam_t * |tau_MTL - tau_t|           task t's mask
    TALL:      theta_t ~= theta_0 + m_t * tau_MTL             one vector + 1 bit/weight/task
    Consensus: keep weights active in >= k masks, then task arithmetic / TIES on
               the pruned task vectors.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lineage.errors import SpecError, UnknownNameError
from lineage.merge import sparsify as sp
from lineage.merge.task_arithmetic import combine

MTL_MERGES = ("sum", "ties")


def multitask_vector(
    taus: torch.Tensor,
    *,
    weight: Sequence[float],
    density: Sequence[float],
    merge: str = "sum",
    normalize: bool = True,
) -> torch.Tensor:
    """tau_MTL from stacked task vectors [T, *shape]: weighted sum, or TIES (trim to
    ``density`` by magnitude, elect sign by mass, disjoint mean when ``normalize``)."""
    if merge == "sum":
        return combine(taus, weight, consensus=None, normalize=False)
    if merge == "ties":
        trimmed = torch.stack([sp.magnitude(t, d) for t, d in zip(taus, density, strict=True)])
        return combine(trimmed, weight, consensus="sum", normalize=normalize)
    raise UnknownNameError.of("multi-task merge", merge, MTL_MERGES)


def masks(taus: torch.Tensor, tau_mtl: torch.Tensor, lam: Sequence[float]) -> torch.Tensor:
    """TALL masks, bool [T, *shape]: ``|tau_t| >= lam_t * |tau_MTL - tau_t|``."""
    lam_t = torch.tensor(list(lam), dtype=taus.dtype).reshape(-1, *([1] * (taus.dim() - 1)))
    return taus.abs() >= lam_t * (tau_mtl.unsqueeze(0) - taus).abs()


def tall_mask(
    base: torch.Tensor,
    tensors: Sequence[torch.Tensor],
    *,
    task: int,
    lam: Sequence[float],
    weight: Sequence[float],
    density: Sequence[float],
    merge: str = "sum",
    normalize: bool = True,
) -> torch.Tensor:
    """Reconstruct fine-tuned model ``task`` (0-based among ``tensors``) from the
    multi-task vector and its TALL mask: ``theta_0 + m_task * tau_MTL``."""
    if not 0 <= task < len(tensors):
        raise SpecError(
            f"tall_mask task={task}",
            f"the task index must name one of the {len(tensors)} fine-tuned models",
            f"Use 0..{len(tensors) - 1} or the model's name",
        )
    taus = torch.stack([x - base for x in tensors])
    mtl = multitask_vector(taus, weight=weight, density=density, merge=merge, normalize=normalize)
    m = masks(taus[task : task + 1], mtl, lam[task : task + 1])[0]
    return base + m.to(base.dtype) * mtl


def consensus(
    base: torch.Tensor,
    tensors: Sequence[torch.Tensor],
    *,
    k: int = 2,
    lam: Sequence[float],
    weight: Sequence[float],
    density: Sequence[float],
    merge: str = "sum",
    normalize: bool = False,
    lambda_: float = 1.0,
) -> torch.Tensor:
    """Consensus merging: prune task vectors to the weights where >= ``k`` TALL masks
    agree, then merge them with the same ``merge`` (task arithmetic sum or TIES)."""
    taus = torch.stack([x - base for x in tensors])
    mtl = multitask_vector(taus, weight=weight, density=density, merge=merge, normalize=normalize)
    keep = masks(taus, mtl, lam).sum(dim=0) >= k
    pruned = taus * keep.to(taus.dtype)
    merged = multitask_vector(
        pruned, weight=weight, density=density, merge=merge, normalize=normalize
    )
    return base + lambda_ * merged
