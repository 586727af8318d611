"""The merge driver: stream a recipe's models tensor by tensor into a new model folder.

Memory stays at about one tensor per input model (plus the shard being written): each
output tensor is computed from the inputs' tensors of the same name, which are loaded,
merged and dropped before the next name.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from lineage.errors import IncompatibleModelsError
from lineage.merge import output
from lineage.merge.recipe import Plan, Recipe, load_recipe
from lineage.merge.registry import merge_tensor
from lineage.weights import ModelWeights, open_model
from lineage.weights.dtypes import is_float, itemsize

Resolver = Callable[[str], str | Path]


@dataclass(frozen=True)
class MergeResult:
    """What :func:`merge_models` wrote."""

    out_dir: Path
    method: str
    model_ids: tuple[str, ...]  # every input, base first
    n_tensors: int
    files: tuple[str, ...]  # safetensors shard names inside out_dir
    total_bytes: int
    seconds: float


def _local(ref: str) -> Path:
    return Path(ref)


def check_compatible(models: Mapping[str, ModelWeights], reference: str) -> None:
    """Every model has exactly the reference's tensor names and shapes, else
    IncompatibleModelsError naming the model and the first offending tensor."""
    ref = models[reference].infos()
    for model_id, m in models.items():
        infos = m.infos()
        for name, info in ref.items():
            if name not in infos:
                raise IncompatibleModelsError(
                    f"model {model_id}", f"has no tensor {name!r}, which {reference} has",
                    "Merge only models of the same architecture")
            if tuple(infos[name].shape) != tuple(info.shape):
                raise IncompatibleModelsError(
                    f"model {model_id}",
                    f"tensor {name!r} has shape {list(infos[name].shape)} where {reference}'s "
                    f"is {list(info.shape)}", "Merge only models of the same architecture")
        extra = [n for n in infos if n not in ref]
        if extra:
            raise IncompatibleModelsError(
                f"model {model_id}", f"has tensor {extra[0]!r}, which {reference} lacks",
                "Merge only models of the same architecture")


def _check_tensor_file(path: str, m: ModelWeights, ref: ModelWeights) -> None:
    """A Fisher file must cover every float tensor of the models, with the same shapes.

    A partial file would silently turn Fisher averaging into a plain mean (and UBGM into
    task arithmetic) for the tensors it misses, e.g. when a Fisher was keyed by module
    names that differ from the names transformers saves.
    """
    ref_infos, infos = ref.infos(), m.infos()
    shared = [n for n in infos if n in ref_infos]
    if not shared:
        raise IncompatibleModelsError(
            f"tensor file {path}", "shares no tensor name with the models being merged",
            "Estimate the Fisher on the same architecture (lineage.merge.fisher)")
    missing = [n for n, i in ref_infos.items() if is_float(i.dtype) and n not in infos]
    if missing:
        raise IncompatibleModelsError(
            f"tensor file {path}",
            f"has no entry for {len(missing)} float tensor(s) of the models, e.g. "
            f"{missing[0]!r}",
            "Estimate it with `lineage fisher`, which names tensors as they are saved")
    for n in shared:
        if tuple(infos[n].shape) != tuple(ref_infos[n].shape):
            raise IncompatibleModelsError(
                f"tensor file {path}", f"tensor {n!r} has shape {list(infos[n].shape)}, the "
                f"models' is {list(ref_infos[n].shape)}", "Use the Fisher of these models")


def _file_tensor(m: ModelWeights, name: str, like: torch.Tensor) -> torch.Tensor:
    # Only non-float tensors (integer buffers, copied from the base) can lack an entry:
    # _check_tensor_file refused files missing a float tensor.
    if name in m.infos():
        return m.tensor(name)
    return torch.zeros(like.shape, dtype=torch.float32)


def _tensor_kwargs(plan: Plan, files: Mapping[str, ModelWeights], name: str,
                   like: torch.Tensor) -> dict[str, Any]:
    kw: dict[str, Any] = dict(plan.kwargs)
    for key, paths in plan.tensor_files.items():
        kw[key] = [_file_tensor(files[p], name, like) for p in paths]
    for key, path in plan.base_tensor_files.items():
        kw[key] = _file_tensor(files[path], name, like)
    return kw


def _open_all(plan: Plan, resolve: Resolver, stack: ExitStack):
    ids = ([plan.base] if plan.base else []) + [i for i in plan.inputs if i != plan.base]
    models = {i: stack.enter_context(open_model(resolve(i))) for i in ids}
    paths = {p for ps in plan.tensor_files.values() for p in ps}
    paths |= set(plan.base_tensor_files.values())
    files = {p: stack.enter_context(open_model(p)) for p in sorted(paths)}
    return models, files


def merge_models(
    recipe: Recipe | Mapping[str, Any] | str | Path,
    out_dir: str | Path,
    *,
    resolve: Resolver = _local,
    progress: bool = True,
    max_shard_bytes: int = output.DEFAULT_MAX_SHARD_BYTES,
    overwrite: bool = False,
) -> MergeResult:
    """Run a merge recipe and write the merged model to ``out_dir``.

    ``recipe``: a Recipe, a mapping, YAML text or a YAML file path (mergekit's shape).
    ``resolve`` maps each model reference in the recipe to a local path (a model folder
    or .safetensors file); the default treats references as paths. Per-model ``fisher``
    parameters are local paths to safetensors files. The output folder gets the
    safetensors shards (plus ``model.safetensors.index.json`` when sharded),
    config.json and tokenizer files of the base model (or first model), and a README.md
    whose front matter declares the inputs as ``base_model`` with relation ``merge``.
    """
    start = time.monotonic()
    recipe = load_recipe(recipe)
    plan = recipe.plan()
    with ExitStack() as stack:
        models, files = _open_all(plan, resolve, stack)
        reference = plan.base or plan.inputs[0]
        check_compatible(models, reference)
        for path, m in files.items():
            _check_tensor_file(path, m, models[reference])
        with output.AtomicFolder(out_dir, overwrite=overwrite) as folder:
            written = _stream(plan, recipe, models, files, reference, folder.tmp,
                              max_shard_bytes, progress)
            _write_side(recipe, models, reference, folder.tmp, resolve)
            folder.commit()
    n_tensors, shard_files, total = written
    return MergeResult(Path(out_dir), plan.method.name, tuple(recipe.model_ids), n_tensors,
                       tuple(shard_files), total, time.monotonic() - start)


def _out_size(info, dtype: torch.dtype | None) -> int:
    if dtype is None or not is_float(info.dtype):
        return info.nbytes
    return info.numel * torch.empty((), dtype=dtype).element_size()


def _stream(plan, recipe, models, files, reference, folder, max_bytes, progress):
    infos = models[reference].infos()
    dtype = recipe.output_dtype
    shards = output.plan_shards([(n, _out_size(i, dtype)) for n, i in infos.items()],
                                max_bytes)
    writer = output.ShardWriter(folder, shards)
    base_model = models[plan.base] if plan.base else None
    for name, info in tqdm(infos.items(), disable=not progress, desc="merge", unit="tensor"):
        first = models[reference].tensor(name)
        if not is_float(info.dtype) or itemsize(info.dtype) < 2:
            # Integer buffers (position ids) and fp8 weights are not merged: copied as is.
            writer.add(name, first.clone())
            continue
        base = base_model.tensor(name) if base_model is not None else None
        tensors = [models[i].tensor(name) for i in plan.inputs]
        kwargs = _tensor_kwargs(plan, files, name, first)
        out = merge_tensor(plan.method, name, base, tensors, kwargs,
                           seed=recipe.seed, out_dtype=dtype or first.dtype)
        writer.add(name, out)
        del base, tensors, kwargs, out, first
    return len(infos), writer.finish(), writer.total_bytes


def _write_side(recipe: Recipe, models, reference: str, folder: Path, resolve) -> None:
    src = models[reference]
    output.write_config(folder, src.metadata.config, recipe.output_dtype)
    tok = recipe.tokenizer_source
    tok_id = reference if tok in (None, "base") else tok
    tok_root = models[tok_id].layout.root if tok_id in models else Path(resolve(tok_id))
    output.copy_side_files(Path(tok_root), folder)
    method = recipe.method
    about = (f"This model is a merge made with lineage using **{method.name}** "
             f"({method.paper}, {method.url}).")
    title = recipe.name or f"{method.name} merge"
    text = output.card_text(recipe.model_ids, recipe.to_yaml(), title, about)
    (folder / "README.md").write_text(text, encoding="utf-8")
