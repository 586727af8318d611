"""Merges that choose, entry by entry, which model's change to keep: SCE, Arcee Fusion,
NearSwap."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from lineage.errors import SpecError

QUANTILE_SAMPLE = 1_000_000


def _one(name: str, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    if len(tensors) != 1:
        raise SpecError(f"{name} with {len(tensors)} model(s) besides the base",
                        "it merges exactly one model into base_model", "List two models")
    return tensors[0]


def sce(base: torch.Tensor, tensors: Sequence[torch.Tensor], *, select_topk: float = 1.0,
        int8_mask: bool = False) -> torch.Tensor:
    """SCE (Wan et al. 2024, FuseChat): Select the ``select_topk`` fraction of entries
    whose task vectors vary most across models, Calculate one coefficient per model
    (its mean squared task vector, normalised to sum 1), Erase entries whose sign
    disagrees with the sign of the summed task vectors; disjoint weighted mean."""
    deltas = torch.stack([x - base for x in tensors])
    if select_topk < 1:
        var = deltas.var(dim=0, unbiased=False).reshape(-1)
        k = int(abs(select_topk) * int(torch.count_nonzero(var)))
        keep = torch.zeros_like(var)
        if k > 0:
            keep[torch.topk(var.abs(), k, sorted=False).indices] = 1
        deltas = deltas * keep.reshape(base.shape)
    energy = [float((d.double() ** 2).sum()) / max(d.numel(), 1) for d in deltas]
    total = sum(energy)
    coef = [e / total for e in energy] if total else [1 / len(energy)] * len(energy)
    w = torch.tensor(coef, dtype=deltas.dtype).reshape(-1, *([1] * base.dim()))
    majority = torch.where(deltas.sum(dim=0) >= 0, 1.0, -1.0).to(deltas.dtype)
    kept = w * (deltas.sign() == majority).to(deltas.dtype)
    divisor = kept.sum(dim=0)
    divisor[divisor == 0] = 1
    return base + (deltas * kept).sum(dim=0) / divisor


def _quantiles(x: torch.Tensor, qs: Sequence[float], seed: int) -> list[float]:
    flat = x.reshape(-1)
    if flat.numel() > QUANTILE_SAMPLE:  # mergekit samples too; ours is seeded per tensor
        g = torch.Generator().manual_seed(seed)
        flat = flat[torch.randint(flat.numel(), (QUANTILE_SAMPLE,), generator=g)]
    ordered = np.sort(flat.numpy())  # values only: torch.sort adds an int64 index each
    return [float(ordered[int(q * (len(ordered) - 1))]) for q in qs]


def arcee_fusion(base: torch.Tensor, tensors: Sequence[torch.Tensor], *,
                 seed: int = 0) -> torch.Tensor:
    """Arcee Fusion (Arcee AI 2025): keep the other model's change only where it matters.

    Importance = |theta_1 - theta_0| times the KL divergence between the row-wise softmax
    of theta_1 and of theta_0; entries with importance >= median + 1.5 IQR take theta_1,
    the rest keep theta_0.
    """
    other = _one("arcee_fusion", tensors)
    diff = other - base
    importance = diff.abs().mul_(_row_kl(other, base))
    q1, median, q3 = _quantiles(importance, (0.25, 0.5, 0.75), seed)
    mask = importance >= median + 1.5 * (q3 - q1)
    del importance
    return diff.mul_(mask).add_(base)


def _row_kl(p_logits: torch.Tensor, q_logits: torch.Tensor, eps: float = 1e-8):
    """KL(softmax(p) || softmax(q)) per row (last dimension), keepdim; three temporaries
    of the tensor's size at most, freed on return."""
    p = torch.softmax(p_logits, dim=-1).add_(eps)
    q = torch.softmax(q_logits, dim=-1).add_(eps)
    return torch.div(p, q, out=q).log_().mul_(p).sum(dim=-1, keepdim=True)


def nearswap(base: torch.Tensor, tensors: Sequence[torch.Tensor], *, t: float) -> torch.Tensor:
    """NearSwap (alchemonaut 2024): move an entry towards the other model by
    ``min(1, t / |theta_0 - theta_1|)``: entries that already nearly agree are swapped."""
    other = _one("nearswap", tensors)
    if t <= 0:
        raise SpecError(f"nearswap t={t}", "the sameness threshold must be > 0",
                        "Use a small positive t, e.g. 0.0001")
    gap = (base - other).abs()
    lam = torch.nan_to_num(t / gap, nan=1.0, posinf=1.0, neginf=1.0).clamp(0.0, 1.0)
    return lam * other + (1 - lam) * base
