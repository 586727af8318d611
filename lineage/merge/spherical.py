"""Merges on the hypersphere beyond two-model SLERP: NuSLERP, Multi-SLERP, Karcher mean.

All three treat a tensor (or each row) as a direction and a norm, interpolate directions
on the sphere and rescale by an interpolated norm. With a base model they act on task
vectors (``theta_i - theta_0``) and add the result back to the base.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lineage.errors import SpecError


def _two(name: str, tensors: Sequence[torch.Tensor]) -> None:
    if len(tensors) != 2:
        raise SpecError(f"{name} with {len(tensors)} model(s) besides the base",
                        "it interpolates exactly two models", "List two models")


def nuslerp_pair(t: float, v0: torch.Tensor, v1: torch.Tensor, *, row_wise: bool,
                 flatten: bool, eps: float = 1e-8) -> torch.Tensor:
    """SLERP of ``v0`` (t=0) to ``v1`` (t=1) along rows or columns (or the whole tensor
    flattened); vectors whose angle has |sin| < eps are interpolated linearly."""
    shape = v0.shape
    if flatten or v0.dim() < 2:
        a, b = v0.reshape(1, -1), v1.reshape(1, -1)
    elif row_wise:
        a, b = v0.reshape(shape[0], -1), v1.reshape(shape[0], -1)
    else:  # column-wise: each vector runs along the first dimension
        a, b = v0.reshape(shape[0], -1).T, v1.reshape(shape[0], -1).T
    a64, b64 = a.double(), b.double()
    cos = ((a64 / a64.norm(dim=-1, keepdim=True).clamp_min(1e-7))
           * (b64 / b64.norm(dim=-1, keepdim=True).clamp_min(1e-7))).sum(-1, keepdim=True)
    theta = torch.acos(cos.clamp(-1, 1))
    sin = torch.sin(theta)
    colinear = sin.abs() < eps
    safe = torch.where(colinear, torch.ones_like(sin), sin)
    s0 = torch.where(colinear, torch.full_like(sin, 1 - t), torch.sin((1 - t) * theta) / safe)
    s1 = torch.where(colinear, torch.full_like(sin, t), torch.sin(t * theta) / safe)
    out = (s0.to(a.dtype) * a + s1.to(a.dtype) * b)
    if not (flatten or v0.dim() < 2) and not row_wise:
        out = out.T
    return out.reshape(shape)


def nuslerp(base: torch.Tensor | None, tensors: Sequence[torch.Tensor], *,
            weight: Sequence[float], nuslerp_row_wise: bool = False,
            nuslerp_flatten: bool = True) -> torch.Tensor:
    """NuSLERP (mergekit): ``t = w_1 / (w_0 + w_1)`` (0.5 when the weights sum to ~0);
    with a base, SLERP of the two task vectors added to the base."""
    _two("nuslerp", tensors)
    total = weight[0] + weight[1]
    t = 0.5 if abs(total) < 1e-6 else weight[1] / total
    kw = {"row_wise": nuslerp_row_wise, "flatten": nuslerp_flatten}
    if base is None:
        return nuslerp_pair(t, tensors[0], tensors[1], **kw)
    return base + nuslerp_pair(t, tensors[0] - base, tensors[1] - base, **kw)


def multislerp(base: torch.Tensor | None, tensors: Sequence[torch.Tensor], *,
               weight: Sequence[float], normalize_weights: bool = True,
               eps: float = 1e-8) -> torch.Tensor:
    """Multi-SLERP (Goddard 2025): barycentric interpolation on the sphere.

    Directions u_i = x_i / |x_i| are averaged with the weights, the mean direction m is
    normalised, the weighted tangent vectors sum_i w_i (u_i - (u_i.m) m) are mapped back
    with the exponential map, and the result is scaled by sum_i w_i |x_i|.
    """
    if len(tensors) == 1:
        return tensors[0]
    xs = torch.stack([x if base is None else x - base for x in tensors]).double()
    flat = xs.reshape(len(tensors), -1)
    w = torch.tensor(list(weight), dtype=torch.float64)
    if normalize_weights:
        w = w / w.sum()
    norms = flat.norm(dim=-1, keepdim=True)
    units = flat / (norms + eps)
    mean = (units * w[:, None]).sum(0)
    mean_norm = mean.norm()
    if mean_norm < eps:
        if len(tensors) != 2:
            raise SpecError("multislerp", "the weighted mean direction is zero (antipodal "
                            "inputs with balancing weights)", "Change the weights")
        out = (xs[0] * w[0] + xs[1] * w[1])
    else:
        mean = mean / mean_norm
        tangent = ((units - (units @ mean)[:, None] * mean) * w[:, None]).sum(0)
        tn = tangent.norm() + eps
        direction = mean * torch.cos(tn) + tangent * (torch.sin(tn) / tn)
        out = (direction * (norms[:, 0] * w).sum()).reshape(xs.shape[1:])
    out = out.to(tensors[0].dtype)
    return out if base is None else base + out


def karcher(base: torch.Tensor | None, tensors: Sequence[torch.Tensor], *,
            max_iter: int = 10, tol: float = 1e-5) -> torch.Tensor:
    """Karcher (Riemannian) mean of the models' directions, equal weights, scaled by the
    mean norm: iterate m <- exp_m(sum_i a_i log_m(u_i)) until the step is below ``tol``."""
    n = len(tensors)
    if n == 1:
        return tensors[0]
    flat = torch.stack([x.reshape(-1) for x in tensors]).double()
    norms = flat.norm(dim=-1)
    alphas = torch.full((n,), 1.0 / n, dtype=torch.float64)
    valid = norms > tol
    if not valid.any():
        return torch.zeros_like(tensors[0])
    units = flat[valid] / norms[valid, None]
    a = alphas[valid] / alphas[valid].sum()
    mean = (units * a[:, None]).sum(0)
    mean = units[0].clone() if mean.norm() < tol else mean / mean.norm()
    for _ in range(max_iter):
        dots = (units @ mean).clamp(-1, 1)
        theta = torch.arccos(dots)
        moving = theta >= tol
        scale = torch.where(moving, theta / torch.sin(torch.where(moving, theta, 1.0)), 0.0)
        step = ((a * scale)[:, None] * (units - dots[:, None] * mean)).sum(0)
        step_norm = step.norm()
        if step_norm < tol:
            break
        mean = torch.cos(step_norm) * mean + torch.sin(step_norm) * (step / step_norm)
        mean = mean / mean.norm()
    out = (alphas * norms).sum() * mean
    return out.reshape(tensors[0].shape).to(tensors[0].dtype)
