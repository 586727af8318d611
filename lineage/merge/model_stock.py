"""Model Stock (Jang et al., ECCV 2024, "Model Stock: All we need is just a few fine-tuned
models"), with mergekit's choice for N > 2 models: the mean pairwise cosine.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lineage.errors import SpecError


def model_stock(
    base: torch.Tensor, tensors: Sequence[torch.Tensor], *, filter_wise: bool = False
) -> torch.Tensor:
    """``t * mean(theta_i) + (1 - t) * theta_0`` with ``t = N cos / (1 + (N - 1) cos)``.

    ``cos`` is the mean over pairs of the cosine between task vectors ``theta_i - theta_0``
    over the whole tensor, or per row (output filter) when ``filter_wise`` (a vector is
    then one row).
    """
    if len(tensors) < 2:
        raise SpecError(
            f"model_stock with {len(tensors)} fine-tuned model(s)",
            "model stock needs a base model and at least two fine-tuned models",
            "Add fine-tuned models of the same base",
        )
    shape = base.shape
    if filter_wise:
        rows = lambda x: x.reshape(1, -1) if x.dim() < 2 else x.reshape(x.shape[0], -1)
    else:
        rows = lambda x: x.reshape(1, -1)
    w0 = rows(base)
    ws = [rows(x) for x in tensors]
    offsets = [w - w0 for w in ws]
    cosines = []
    for i in range(len(offsets)):
        for j in range(i + 1, len(offsets)):
            a, b = offsets[i], offsets[j]
            norms = (a.norm(dim=-1) * b.norm(dim=-1)).clamp(min=1e-6)
            cosines.append(((a * b).sum(dim=-1) / norms).clamp(-1, 1))
    cos = torch.stack(cosines).mean(dim=0).unsqueeze(-1)  # [rows, 1]
    n = len(ws)
    t = n * cos / (1 + (n - 1) * cos)
    avg = sum(ws) / n
    return (t * avg + (1 - t) * w0).reshape(shape)
