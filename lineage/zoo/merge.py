"""The zoo's own merges of sibling models (kept here so ground truth never depends on
the merge module under test).

tau_t = theta_t - theta_base. Task arithmetic: theta_base + scale * sum_t tau_t.
TIES (Yadav et al. 2023): keep each tau's top-`density` magnitudes, elect a sign per
weight by the summed trimmed taus, average the kept entries that agree, then scale.
"""

from __future__ import annotations

import torch

State = dict[str, torch.Tensor]


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
