"""The generalized task-arithmetic family: task arithmetic, TIES, DARE, breadcrumbs, DELLA.

One function, configured by the registry (``sparsify`` x ``consensus``), mirrors
mergekit's ``GeneralizedTaskArithmeticMerge``:

    tau_i   = theta_i - theta_0                          task vectors, [T, *shape]
    tau_i  <- sparsify(tau_i, density_i, ...)            trim (TIES) / drop (DARE) / ...
    w_i tau_i                                            weighted
    m_i     = sign(w_i tau_i) == elected sign            TIES sign election ("sum")
    delta   = sum_i m_i w_i tau_i  [/ sum_i m_i w_i]     disjoint (normalized) mean
    theta   = theta_0 + lambda * delta
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lineage.errors import UnknownNameError
from lineage.merge import sparsify as sp
from lineage.merge.seeding import generator

SPARSIFIERS = ("magnitude", "random", "magnitude_outliers", "della_magprune")
CONSENSUS = ("sum", "count")


def sparsify_one(
    delta: torch.Tensor,
    method: str,
    *,
    density: float,
    gamma: float,
    epsilon: float,
    norm: str | None,
    gen: torch.Generator,
) -> torch.Tensor:
    """Apply one sparsification ``method`` to a task vector (any shape)."""
    if method == "magnitude":
        return sp.magnitude(delta, density, norm)
    if method == "random":
        return sp.bernoulli(delta, density, gen, norm)
    if method == "magnitude_outliers":
        return sp.magnitude_outliers(delta, density, gamma, norm)
    if method == "della_magprune":
        return sp.della_magprune(delta, density, epsilon, gen, norm)
    raise UnknownNameError.of("sparsification method", method, SPARSIFIERS)


def elect_sign_mask(weighted: torch.Tensor, consensus: str) -> torch.Tensor:
    """TIES sign election over stacked weighted task vectors [T, *shape] -> bool [T, *shape].

    "sum" elects the sign of the total mass (the TIES paper); "count" the sign held by
    more models. Ties go to +, as in mergekit.
    """
    signs = weighted.sign()
    if consensus == "sum":
        elected = torch.where(weighted.sum(dim=0) >= 0, 1.0, -1.0)
    elif consensus == "count":
        elected = torch.where(signs.sum(dim=0) >= 0, 1.0, -1.0)
    else:
        raise UnknownNameError.of("consensus method", consensus, CONSENSUS)
    return signs == elected.to(signs.dtype)


def combine(
    deltas: torch.Tensor,
    weights: Sequence[float],
    *,
    consensus: str | None,
    normalize: bool,
) -> torch.Tensor:
    """Weighted (optionally sign-elected, optionally normalized) sum of [T, *shape] deltas."""
    w = torch.tensor(list(weights), dtype=deltas.dtype).reshape(-1, *([1] * (deltas.dim() - 1)))
    weighted = deltas * w
    if consensus is None:
        mixed = weighted.sum(dim=0)
        divisor = w.sum(dim=0).expand_as(mixed).clone()
        divisor[divisor.abs() < 1e-8] = 1
    else:
        mask = elect_sign_mask(weighted, consensus).to(deltas.dtype)
        mixed = (weighted * mask).sum(dim=0)
        divisor = (w * mask).sum(dim=0)
        divisor[divisor == 0] = 1
    return mixed / divisor if normalize else mixed


def generalized_task_arithmetic(
    base: torch.Tensor,
    tensors: Sequence[torch.Tensor],
    *,
    weight: Sequence[float],
    density: Sequence[float],
    gamma: Sequence[float] | None = None,
    epsilon: Sequence[float] | None = None,
    normalize: bool,
    lambda_: float = 1.0,
    rescale: bool = False,
    rescale_norm: str = "l1",
    sparsify: str | None = None,
    consensus: str | None = None,
    seed: int = 0,
    int8_mask: bool = False,
) -> torch.Tensor:
    """Merge T fine-tuned tensors onto ``base`` (all float32, same shape) -> merged tensor.

    Task arithmetic (Ilharco et al. 2023) is ``sparsify=None, consensus=None``; TIES
    (Yadav et al. 2023) ``magnitude`` + ``sum``; DARE (Yu et al. 2023) ``random``;
    breadcrumbs (Davari & Belilovsky 2023) ``magnitude_outliers``; DELLA (Deep et al.
    2024) ``della_magprune``. ``seed`` is the per-tensor seed; model i draws its own
    random stream from it. ``int8_mask`` is accepted for mergekit recipes: it only sets
    the dtype of mergekit's sign mask and changes no value.
    """
    norm = rescale_norm if rescale else None
    n = len(tensors)
    gammas = gamma if gamma is not None else [0.0] * n
    epsilons = epsilon if epsilon is not None else [0.0] * n
    if n == 0:
        return base
    # Task vectors are written into one [T, *shape] tensor as they are made (a list and
    # then torch.stack would hold them twice).
    deltas = torch.empty((n, *base.shape), dtype=base.dtype)
    for i, x in enumerate(tensors):
        torch.sub(x, base, out=deltas[i])
        if sparsify is not None:
            deltas[i] = sparsify_one(
                deltas[i], sparsify, density=density[i], gamma=gammas[i], epsilon=epsilons[i],
                norm=norm, gen=generator(seed, "model", i),
            )
    mixed = combine(deltas, weight, consensus=consensus, normalize=normalize)
    del deltas
    return mixed.mul_(lambda_).add_(base)
