"""A family of tiny real ViT classifiers (lineage.zoo's architecture) in model folders:
a base and three fine-tunes (base + seeded perturbations, different directions), indexed
into a fresh catalog under the ids org/base, org/ft0..ft2."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from catalog import Catalog
from jobs.local_index import index_local
from lineage.weights import open_model

N_CHILDREN = 3


def _save_vit(folder: Path, seed: int = 0) -> Path:
    from lineage.zoo.arch import new_model, quiet_transformers
    from lineage.zoo.spec import Size

    quiet_transformers()
    model = new_model("vit", Size(hidden=16, layers=1, heads=2, intermediate=32), "hf", seed)
    model.save_pretrained(folder)
    return folder


def _save_like(folder: Path, base_dir: Path, state: dict[str, torch.Tensor]) -> Path:
    # The file's own tensor names (transformers renames some on save), and its config.
    folder.mkdir(parents=True)
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    shutil.copy(base_dir / "config.json", folder / "config.json")
    return folder


@pytest.fixture(scope="session")
def vit_family(tmp_path_factory) -> dict[str, Path]:
    """org/base and org/ft{i}; ft{i} moves a different random subset of weights."""
    root = tmp_path_factory.mktemp("vits") / "models"
    base_dir = _save_vit(root / "org" / "base")
    with open_model(base_dir) as m:
        base = {n: t.clone() for n, t in m.iter_tensors()}
    paths = {"org/base": base_dir}
    for i in range(N_CHILDREN):
        gen = torch.Generator().manual_seed(100 + i)
        state = {n: t + 0.05 * torch.randn(t.shape, generator=gen) * (torch.rand(
            t.shape, generator=gen) < 0.5) for n, t in base.items()}
        paths[f"org/ft{i}"] = _save_like(root / "org" / f"ft{i}", base_dir, state)
    return paths


@pytest.fixture
def catalog(tmp_path, vit_family) -> Catalog:
    cat = Catalog(tmp_path / "catalog")
    index_local(cat, [next(iter(vit_family.values())).parent.parent], progress=False)
    return cat


def count(cat: Catalog, sql: str, params=()) -> int:
    with cat.reader() as con:
        return con.execute(sql, list(params)).fetchone()[0]


def tensors_of(path) -> dict[str, torch.Tensor]:
    with open_model(path) as m:
        return {n: t.clone() for n, t in m.iter_tensors()}
