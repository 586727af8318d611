"""`lineage fisher`: estimate a model's diagonal Fisher on a dataset, save it, register it.

Datasets: ``zoo:<task>`` (a lineage.zoo task's training split: digits images or text
domains) or a ``.safetensors`` file of model inputs, batched along the first dimension:
``pixel_values`` + ``labels`` for a classifier, ``input_ids`` (+ ``attention_mask``,
``labels``) for a causal LM. The artifact row lets a recipe say ``fisher: catalog``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from catalog import Catalog
from catalog.artifacts import FISHER, register_artifact
from catalog.resolve import CatalogResolver
from catalog.runs import finish_run, start_run
from lineage.errors import ModelNotFoundError, SpecError
from lineage.merge import estimate_fisher, save_fisher

ZOO = "zoo:"
PAD = 0  # lineage.zoo.text's padding token


@dataclass(frozen=True)
class FisherReport:
    path: Path
    model_id: str
    kind: str
    n_examples: int
    registered: bool  # False: no catalog, the model is not cataloged, or already there


def _zoo_batches(task_name: str, n: int, batch_size: int, seed: int) -> list[dict]:
    from lineage.zoo import get_task

    task = get_task(task_name)
    gen = torch.Generator().manual_seed(seed)
    batches, count = [], 0
    while count < n:
        batch = task.train_batch(gen, min(batch_size, n - count))
        if "input_ids" in batch:  # text: mask padding, never predict it
            ids = batch["input_ids"]
            batch = {"input_ids": ids, "attention_mask": (ids != PAD).long(),
                     "labels": ids.masked_fill(ids == PAD, -100)}
        batches.append(batch)
        count += len(next(iter(batch.values())))
    return batches


def _file_batches(path: Path, batch_size: int) -> list[dict]:
    from safetensors.torch import load_file

    if not path.is_file() or path.suffix != ".safetensors":
        raise ModelNotFoundError(f"dataset {str(path)!r}", "is not a .safetensors file",
                                 "Give zoo:<task> or a .safetensors file of model inputs")
    data = load_file(str(path))
    n = len(next(iter(data.values())))
    return [{k: v[i:i + batch_size] for k, v in data.items()} for i in range(0, n, batch_size)]


def load_batches(data: str, n: int, *, batch_size: int = 32, seed: int = 0) -> list[dict]:
    """Batches (dicts of model keyword arguments) for ``data``: zoo:<task> or a file."""
    if data.startswith(ZOO):
        return _zoo_batches(data[len(ZOO):], n, batch_size, seed)
    return _file_batches(Path(data), batch_size)


def load_module(path: Path) -> torch.nn.Module:
    """A float32 torch module for a model folder: zoo architectures directly, anything
    else through transformers' AutoModelForCausalLM."""
    config = json.loads((path / "config.json").read_text()) if (path / "config.json").is_file() \
        else {}
    from lineage.zoo.arch import MODEL_TYPE_TO_ARCH, load_model, quiet_transformers

    quiet_transformers()  # no per-model loading bars in a job's output
    if config.get("model_type") in MODEL_TYPE_TO_ARCH:
        return load_model(path)
    if not config:
        raise SpecError(f"model {str(path)!r}", "has no config.json, so it cannot be run",
                        "Estimate Fishers of full model folders (config.json + weights)")
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def as_saved(module: torch.nn.Module, fisher: dict[str, torch.Tensor]) -> dict:
    """Fisher keys renamed the way ``save_pretrained`` names the weights on disk.

    transformers (v5) keeps some checkpoint names different from the module's parameter
    names (ViT: ``vit.encoder.layer.0.attention.attention.query`` on disk vs
    ``vit.layers.0.attention.q_proj`` in the module). A Fisher keyed by parameter names
    would share no name with the weights it is merged with, and the merge would read
    those tensors as zero information; the same reverse conversion fixes that.
    """
    try:
        from transformers import PreTrainedModel
        from transformers.core_model_loading import revert_weight_conversion
    except ImportError:  # older transformers: parameter names are the checkpoint names
        return fisher
    if not isinstance(module, PreTrainedModel):
        return fisher
    return dict(revert_weight_conversion(module, dict(fisher)))


def fisher_job(
    model: str,
    data: str,
    out: str | Path,
    *,
    kind: str = "sampled",
    n: int = 256,
    seed: int = 0,
    catalog: Catalog | None = None,
    register: bool = True,
) -> FisherReport:
    """Estimate the diagonal Fisher of ``model`` (catalog id or path) over ``n`` examples
    of ``data``, write it to ``out`` and register it as the model's ``fisher`` artifact."""
    resolver = CatalogResolver(catalog)
    path = resolver(model)
    model_id = resolver.catalog_id(model)
    module = load_module(path)
    batches = load_batches(data, n, seed=seed)
    fisher = as_saved(module, estimate_fisher(module, batches, kind=kind, n_samples=n,
                                              seed=seed))
    used = min(n, sum(len(next(iter(b.values()))) for b in batches))
    out = save_fisher(fisher, out, kind=kind, n_examples=used)
    registered = False
    if catalog is not None and register and model_id is not None:
        params = {"kind": kind, "n_examples": used, "data": data, "seed": seed}
        run_id = start_run(catalog, "fisher", {"model": model_id, **params})
        registered = register_artifact(catalog, model_id, FISHER, out, params, run_id)
        finish_run(catalog, run_id)
    return FisherReport(Path(out), model_id or str(path), kind, used, registered)
