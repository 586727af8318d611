"""Sparsification of task vectors: the "trim" / "drop" half of TIES, DARE, breadcrumbs, DELLA.

Every function takes one task vector ``delta`` (any shape, float32) and returns a tensor
of the same shape with dropped entries set to zero, optionally rescaled. Semantics follow
mergekit's ``sparsify.py`` so that a mergekit recipe means the same thing here:
``k = int(density * numel)`` entries survive a magnitude trim, and ``rescale`` matches a
norm of the original (mergekit's current behaviour) unless ``inverse_density`` (the DARE
paper's ``1 / (1 - p)``) is asked for.
"""

from __future__ import annotations

import numpy as np
import torch

from lineage.errors import SpecError, UnknownNameError

RESCALE_NORMS = ("l1", "l2", "linf", "inverse_density")


def rescaled(delta: torch.Tensor, mask: torch.Tensor, norm: str | None, density: float):
    """``delta * mask``, rescaled so its ``norm`` matches ``delta``'s (None: no rescale).

    Matching an L1 norm is what mergekit's ``rescale: true`` does; ``inverse_density``
    divides by the keep probability as in the DARE paper (Yu et al. 2023).
    """
    masked = delta * mask
    if norm is None:
        return masked
    if norm == "inverse_density":
        return masked / density if density > 0 else masked
    if norm == "l1":
        before, after = delta.abs().sum(), masked.abs().sum()
    elif norm == "l2":
        before, after = delta.norm(), masked.norm()
    elif norm == "linf":
        before, after = delta.abs().max(), masked.abs().max()
    else:
        raise UnknownNameError.of("rescale norm", str(norm), RESCALE_NORMS)
    # Same guard as mergekit: an (almost) empty tensor is left as is.
    if before < 1e-7 or after < 1e-7:
        return masked
    return masked * (before / after)


def magnitude(delta: torch.Tensor, density: float, norm: str | None = None) -> torch.Tensor:
    """Keep the ``int(density * numel)`` largest-magnitude entries (TIES "trim", Yadav 2023).

    Where mergekit asserts that at least one entry survives, a tensor too small for the
    density (a bias of 8 entries at density 0.1) comes back all zero instead.
    """
    if density >= 1:
        return delta
    k = int(density * delta.numel())
    mask = torch.zeros(delta.numel(), dtype=delta.dtype)
    if k > 0:
        mask[torch.topk(delta.abs().reshape(-1), k, sorted=False).indices] = 1
    return rescaled(delta, mask.reshape(delta.shape), norm, density)


def bernoulli(
    delta: torch.Tensor, density: float, gen: torch.Generator, norm: str | None = None
) -> torch.Tensor:
    """Keep each entry independently with probability ``density`` (DARE, Yu et al. 2023)."""
    if density >= 1:
        return delta
    mask = (torch.rand(delta.shape, generator=gen) < density).to(delta.dtype)
    return rescaled(delta, mask, norm, density)


def magnitude_outliers(
    delta: torch.Tensor, density: float, gamma: float, norm: str | None = None
) -> torch.Tensor:
    """Model breadcrumbs (Davari & Belilovsky 2023): drop the ``gamma`` fraction of largest
    entries (outliers) and then the smallest, keeping ``int(density * numel)`` entries.

    If ``density + gamma > 1`` fewer outliers are dropped, as in mergekit. Where
    mergekit's slice ``[n_bot:-0]`` keeps nothing when ``int(gamma * numel) == 0``, this
    keeps the top entries (the evident intent). Two selections (a partition for the
    lower cut, ``topk`` of the few outliers) replace mergekit's full sort: O(n) instead
    of O(n log n) and no int64 index per entry; only entries tied with the lower cut-off
    can differ (they are dropped together).
    """
    if density >= 1:
        return delta
    n = delta.numel()
    n_keep, n_top = int(density * n), int(gamma * n)
    n_bot = n - n_keep - n_top
    if n_bot < 0:
        n_top, n_bot = n_top + n_bot, 0
    if n_keep <= 0 and n_bot >= n:
        return rescaled(delta, torch.zeros_like(delta), norm, density)
    keep = _between_cuts(delta, n_bot, n_top)
    return rescaled(delta, keep.reshape(delta.shape).to(delta.dtype), norm, density)


def _between_cuts(delta: torch.Tensor, n_bot: int, n_top: int) -> torch.Tensor:
    """bool [numel]: magnitude above the ``n_bot``-th smallest, and not among the ``n_top``
    largest. The lower cut is numpy's introselect on one float copy (torch's kthvalue also
    builds an int64 index per entry: 3x the tensor's memory)."""
    mags = delta.abs().reshape(-1)
    if n_bot > 0:
        cut = np.partition(mags.numpy(), n_bot - 1)[n_bot - 1]
        keep = mags > float(cut)
    else:
        keep = torch.ones_like(mags, dtype=torch.bool)
    if n_top > 0:
        keep[torch.topk(mags, n_top, sorted=False).indices] = False
    return keep


def della_magprune(
    delta: torch.Tensor,
    density: float,
    epsilon: float,
    gen: torch.Generator,
    norm: str | None = None,
) -> torch.Tensor:
    """DELLA MagPrune (Deep et al. 2024): keep probability grows with magnitude rank.

    Within each row (shape [rows, -1]; a vector is one row) the entry of normalized rank
    r in [0, 1] is kept with probability ``density - epsilon + 2 * epsilon * r``.
    """
    if density >= 1:
        return delta
    if density <= 0:
        return torch.zeros_like(delta)
    if not (0 < density - epsilon and density + epsilon < 1):
        raise SpecError(
            f"della density={density}, epsilon={epsilon}",
            "density - epsilon and density + epsilon must lie strictly between 0 and 1",
            "Lower epsilon or move density away from 0 and 1",
        )
    rows = delta.reshape(1, -1) if delta.dim() < 2 else delta.reshape(delta.shape[0], -1)
    ranks = rows.abs().argsort(dim=1, stable=True).argsort(dim=1).to(delta.dtype)
    span = max(rows.shape[1] - 1, 1)
    probs = (density - epsilon) + (ranks / span) * 2 * epsilon
    mask = (torch.rand(probs.shape, generator=gen) < probs).to(delta.dtype)
    return rescaled(delta, mask.reshape(delta.shape), norm, density)
