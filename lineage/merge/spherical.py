"""Merges on the hypersphere beyond two-model SLERP: NuSLERP, Multi-SLERP, Karcher mean.

All three treat a tensor (or each row) as a direction and a norm, interpolate directions
on the sphere and rescale by an interpolated norm. With a base model they act on task
vectors (``theta_i - theta_0``) and add the result back to the base.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from lineage.errors import SpecError
from lineage.merge.slerp import norm64, slerp_cosine


def _two(name: str, tensors: Sequence[torch.Tensor]) -> None:
    if len(tensors) != 2:
        raise SpecError(f"{name} with {len(tensors)} model(s) besides the base",
                        "it interpolates exactly two models", "List two models")


def nuslerp_pair(t: float, v0: torch.Tensor, v1: torch.Tensor, *, row_wise: bool,
                 flatten: bool, eps: float = 1e-8) -> torch.Tensor:
    """SLERP of ``v0`` (t=0) to ``v1`` (t=1) along rows or columns (or the whole tensor
    flattened); vectors whose angle has |sin| < eps are interpolated linearly.

    Flattened, the angle comes from float64 sums (as SLERP's: a float32 norm of an
    embedding matrix drifts); per row or column the vectors are short and float32 is
    enough, as in mergekit.
    """
    shape = v0.shape
    if flatten or v0.dim() < 2:
        cos = slerp_cosine(v0, v1)
        theta = math.acos(max(-1.0, min(1.0, cos)))
        if abs(math.sin(theta)) < eps:
            return (1 - t) * v0 + t * v1
        s0 = math.sin((1 - t) * theta) / math.sin(theta)
        s1 = math.sin(t * theta) / math.sin(theta)
        return s0 * v0 + s1 * v1
    a, b = v0.reshape(shape[0], -1), v1.reshape(shape[0], -1)
    if not row_wise:  # column-wise: each vector runs along the first dimension
        a, b = a.T, b.T
    cos = ((a / a.norm(dim=-1, keepdim=True).clamp_min(1e-7))
           * (b / b.norm(dim=-1, keepdim=True).clamp_min(1e-7))).sum(-1, keepdim=True)
    theta = torch.acos(cos.clamp(-1, 1))
    sin = torch.sin(theta)
    colinear = sin.abs() < eps
    safe = torch.where(colinear, torch.ones_like(sin), sin)
    s0 = torch.where(colinear, torch.full_like(sin, 1 - t), torch.sin((1 - t) * theta) / safe)
    s1 = torch.where(colinear, torch.full_like(sin, t), torch.sin(t * theta) / safe)
    out = s0 * a + s1 * b
    return (out if row_wise else out.T).reshape(shape)


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
    with the exponential map, and the result is scaled by sum_i w_i |x_i|. Norms and dot
    products are float64 sums; the tensors stay in float32 (one copy per input).
    """
    if len(tensors) == 1:
        return tensors[0]
    xs = [x if base is None else x - base for x in tensors]
    w = [float(v) for v in weight]
    if normalize_weights:
        total = sum(w)
        w = [v / total for v in w]
    norms = [norm64(x) for x in xs]
    units = [x / (n + eps) for x, n in zip(xs, norms, strict=True)]
    mean = sum(wi * u for wi, u in zip(w, units, strict=True))
    mean_norm = norm64(mean)
    if mean_norm < eps:
        if len(tensors) != 2:
            raise SpecError("multislerp", "the weighted mean direction is zero (antipodal "
                            "inputs with balancing weights)", "Change the weights")
        out = xs[0] * w[0] + xs[1] * w[1]
    else:
        mean = mean / mean_norm
        dots = [slerp_cosine(u, mean) * norm64(u) for u in units]  # u . m (|m| = 1)
        tangent = sum(wi * (u - d * mean) for wi, u, d in zip(w, units, dots, strict=True))
        tn = norm64(tangent) + eps
        scale = sum(wi * n for wi, n in zip(w, norms, strict=True))
        out = (math.cos(tn) * mean + (math.sin(tn) / tn) * tangent) * scale
    return out if base is None else base + out


def karcher(base: torch.Tensor | None, tensors: Sequence[torch.Tensor], *,
            max_iter: int = 10, tol: float = 1e-5) -> torch.Tensor:
    """Karcher (Riemannian) mean of the models' directions, equal weights, scaled by the
    mean norm: iterate m <- exp_m(sum_i a_i log_m(u_i)) until the step is below ``tol``.

    The tangent step sum_i c_i (u_i - d_i m) is computed as (sum_i c_i u_i) - (sum_i c_i
    d_i) m, one matrix-vector product, and the mean is updated in place: one new vector
    per iteration instead of a [T, n] temporary or two (mergekit's loop allocates ~3T).
    """
    n = len(tensors)
    if n == 1:
        return tensors[0]
    norms = torch.tensor([norm64(x) for x in tensors], dtype=tensors[0].dtype)
    alphas = torch.full((n,), 1.0 / n, dtype=tensors[0].dtype)
    valid = [i for i in range(n) if norms[i] > tol]
    if not valid:
        return torch.zeros_like(tensors[0])
    units = torch.stack([tensors[i].reshape(-1) for i in valid])
    units.div_(norms[valid, None])
    a = alphas[valid] / alphas[valid].sum()
    mean = units.T @ a
    mean_norm = float(mean.norm())
    mean = units[0].clone() if mean_norm < tol else mean.div_(mean_norm)
    for _ in range(max_iter):
        dots = (units @ mean).clamp(-1, 1)
        theta = torch.arccos(dots)
        moving = theta >= tol
        c = torch.where(moving, a * theta / torch.sin(torch.where(moving, theta, 1.0)), 0.0)
        step = units.T @ c
        step.sub_(mean, alpha=float((c * dots).sum()))
        step_norm = float(step.norm())
        if step_norm < tol:
            break
        mean.mul_(math.cos(step_norm)).add_(step, alpha=math.sin(step_norm) / step_norm)
        mean.div_(mean.norm())
    out = mean.mul_((alphas * norms).sum())
    return out.reshape(tensors[0].shape)
