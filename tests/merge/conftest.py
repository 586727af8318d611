"""Fixtures for merge tests: pico tensors and a helper that runs a recipe on one tensor."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lineage.merge import Recipe, merge_tensor


@pytest.fixture
def pico():
    """A base tensor [6, 5] and three fine-tuned versions of it (float32, fixed seed)."""
    g = torch.Generator().manual_seed(1234)
    base = torch.randn(6, 5, generator=g)
    tuned = [base + 0.5 * torch.randn(6, 5, generator=g) for _ in range(3)]
    return base, tuned


def recipe_for(method: str, n: int, *, params=None, model_params=None, base=True, **top):
    """A recipe dict over models m0..m{n-1} (and base `b`)."""
    model_params = model_params or [{} for _ in range(n)]
    models = [{"model": f"m{i}", "parameters": p} for i, p in enumerate(model_params)]
    data = {"merge_method": method, "models": models, "parameters": params or {}, **top}
    if base:
        data["base_model"] = "b"
    return data


def merge_one(data: dict, base, tensors, name: str = "layer.weight", **extra) -> torch.Tensor:
    """Run the recipe's method on one tensor, the way the streaming driver does."""
    recipe = Recipe.from_dict(data)
    plan = recipe.plan()
    kwargs = {**plan.kwargs, **extra}
    return merge_tensor(plan.method, name, base, list(tensors), kwargs, seed=recipe.seed,
                        out_dtype=torch.float32)


def np64(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).numpy()
