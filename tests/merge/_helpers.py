"""Helpers shared by the merge tests: recipes on one tensor, pico model folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from lineage.merge import Recipe, merge_tensor
from lineage.weights import open_model


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


class Pico(torch.nn.Module):
    """A pico language model: embedding, one block, a head, and an integer buffer."""

    def __init__(self, vocab: int = 11, dim: int = 8) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, dim)
        self.norm = torch.nn.LayerNorm(dim)
        self.up = torch.nn.Linear(dim, 2 * dim)
        self.down = torch.nn.Linear(2 * dim, dim)
        self.head = torch.nn.Linear(dim, vocab, bias=False)
        self.register_buffer("position_ids", torch.arange(6))


def save_model(folder: Path, module: torch.nn.Module, **config) -> Path:
    folder.mkdir(parents=True)
    state = {k: v.detach().clone().contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"model_type": "pico", **config}))
    return folder


def load_all(path) -> dict[str, torch.Tensor]:
    with open_model(path) as m:
        return {n: t.clone() for n, t in m.iter_tensors()}
