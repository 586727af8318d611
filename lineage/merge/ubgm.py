"""Uncertainty-based gradient matching (Daheim et al., ICLR 2024, "Model Merging by
Uncertainty-Based Gradient Matching").

The paper's merged model (their eq. with ``H_bar = H_0 + sum_t a_t H_t``) is

    theta = theta_0 + sum_t a_t * H_bar^{-1} (H_0 + H_t) (theta_t - theta_0)

with diagonal Hessian estimates, so per parameter (all arrays [*shape]):

    num_t = s_0 H_0 + s_t H_t + delta0
    den   = s_0 H_0 + sum_t a_t s_t H_t + delta0
    theta = theta_0 + sum_t a_t * num_t / den * (theta_t - theta_0)

``H_t`` are the per-example-mean diagonal Fishers of the fine-tuned models, ``s_t`` their
dataset sizes (so ``s_t H_t`` is the summed Fisher), ``H_0``/``s_0`` the base model's
(zero when not given) and ``delta0`` a small prior precision. With all H = 0 every ratio
is 1 and this is exactly task arithmetic ``theta_0 + sum_t a_t tau_t``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def ubgm(
    base: torch.Tensor,
    tensors: Sequence[torch.Tensor],
    *,
    weight: Sequence[float],
    fisher: Sequence[torch.Tensor],
    size: Sequence[float],
    base_fisher: torch.Tensor | None = None,
    base_size: float = 1.0,
    lambda_: float = 1.0,
    delta0: float = 1e-8,
) -> torch.Tensor:
    """UBGM merge of T models; ``a_t = lambda_ * weight[t]`` (a single ``a`` = ``lambda_``).

    Computed in float64: Fisher entries span many orders of magnitude and the ratio of
    two sums of them loses digits in float32.
    """
    f64 = torch.float64
    theta0 = base.to(f64)
    prior = torch.full_like(theta0, delta0)
    if base_fisher is not None:
        prior = prior + base_size * base_fisher.to(f64)
    scales = [lambda_ * w for w in weight]
    den = prior.clone()
    for a, s, h in zip(scales, size, fisher, strict=True):
        den += a * s * h.to(f64)
    out = theta0.clone()
    for a, s, h, x in zip(scales, size, fisher, tensors, strict=True):
        out += a * (prior + s * h.to(f64)) / den * (x.to(f64) - theta0)
    return out
