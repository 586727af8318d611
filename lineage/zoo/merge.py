"""The zoo's merges.

Task arithmetic and TIES are the zoo's own (so the ground truth of every zoo built before
lineage.merge existed never depends on the merge module under test):
tau_t = theta_t - theta_base. Task arithmetic: theta_base + scale * sum_t tau_t.
TIES (Yadav et al. 2023): keep each tau's top-`density` magnitudes, elect a sign per
weight by the summed trimmed taus, average the kept entries that agree, then scale.

The other methods call lineage.merge's registered functions (read-only use of the merge
library, the same code `lineage merge` runs): linear (a soup, the plain mean), DARE
(random drop at `density`, rescaled; with TIES' sign election or without), SLERP (from
parents[0], t = 0, to parents[1], t = 1) and model stock (the base pulled towards the
mean of the fine-tunes by the angle between their task vectors).
"""

from __future__ import annotations

from typing import Any

import torch

from lineage.errors import SpecError
from lineage.zoo.plan import Node

State = dict[str, torch.Tensor]
OWN_METHODS = ("task_arithmetic", "ties")


def merge_node_states(node: Node, base: State | None, models: list[State]) -> State:
    """The merged weights of a planned merge `node` from its parents' (and base's)."""
    if node.merge_method in OWN_METHODS:
        if base is None:
            raise SpecError(f"zoo merge {node.id}", f"{node.merge_method} has no base model",
                            "Plan task-vector merges with a merge base")
        return merge_states(
            base, models, node.merge_method, node.merge_scale, node.merge_density or 0.0
        )
    return _library_merge(node, base, models)


def merge_states(
    base: State, models: list[State], method: str, scale: float, density: float
) -> State:
    out = {}
    for name, theta0 in base.items():
        taus = torch.stack([m[name].double() - theta0.double() for m in models])  # (T, *shape)
        if method == "ties":
            merged = _ties(taus, density)
        else:
            merged = taus.sum(0)
        out[name] = (theta0.double() + scale * merged).to(theta0.dtype).contiguous()
    return out


def _ties(taus: torch.Tensor, density: float) -> torch.Tensor:
    flat = taus.reshape(len(taus), -1)
    k = max(1, int(round(density * flat.shape[1])))
    # Trim: the k-th largest magnitude per task is its threshold.
    thresh = flat.abs().kthvalue(flat.shape[1] - k + 1, dim=1, keepdim=True).values
    trimmed = torch.where(flat.abs() >= thresh, flat, torch.zeros_like(flat))
    sign = torch.sign(trimmed.sum(0, keepdim=True))
    agree = (torch.sign(trimmed) == sign) & (trimmed != 0)
    kept = torch.where(agree, trimmed, torch.zeros_like(trimmed))
    merged = kept.sum(0) / agree.sum(0).clamp(min=1)
    return merged.reshape(taus.shape[1:])


def _library_merge(node: Node, base: State | None, models: list[State]) -> State:
    from lineage.merge.registry import REQUIRED, get_method, merge_tensor

    method = get_method(node.merge_method)
    given: dict[str, Any] = {
        "weight": 1.0,
        "density": node.merge_density,
        "lambda": node.merge_scale,
        "t": node.merge_t,
    }
    kwargs = {}
    for p in method.params:
        value = given.get(p.name)
        value = p.default if value is None else value
        if value is REQUIRED:
            raise SpecError(f"zoo merge {node.id}", f"{method.name} needs {p.name}",
                            f"Give merges[].{p.name} in the spec")
        kwargs[p.keyword] = [value] * len(models) if p.per_model else value
    if node.merge_method == "slerp":  # from the first parent to the second
        base, models = models[0], models[1:]
        kwargs = {"t": node.merge_t}
    out = {}
    for name, first in models[0].items():
        tensors = [m[name] for m in models]
        b = base[name] if base is not None else None
        out[name] = merge_tensor(
            method, name, b, tensors, kwargs, seed=node.seed, out_dtype=first.dtype
        ).contiguous()
    return out
