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

from lineage.errors import IncompatibleModelsError, SpecError
from lineage.merge import output
from lineage.merge.layers import LAYER_COUNT_KEYS, count_layers, is_post, position, split_layer
from lineage.merge.recipe import Plan, Recipe, load_recipe
from lineage.merge.registry import REQUIRED, merge_tensor
from lineage.merge.settings import evaluate_all
from lineage.merge.tokenizers import tokenizer_folder
from lineage.weights import ModelWeights, open_model
from lineage.weights.dtypes import is_float, itemsize, torch_dtype

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


@dataclass(frozen=True)
class TensorJob:
    """One output tensor: its plan, where each model's input is, and its layer position."""

    out_name: str
    plan: Plan
    sources: Mapping[str, str]  # model id -> that model's tensor name
    t: float

    @property
    def first(self) -> str:
        return self.plan.model_ids[0]


def _resolved(plan: Plan, job: TensorJob) -> dict[str, Any]:
    """The plan's keywords for this tensor: gradients and filters evaluated; a filter
    list matching nothing falls back to the method's default."""
    kw = evaluate_all(plan.kwargs, job.out_name, job.t)
    for p in plan.method.params:
        value = kw.get(p.keyword)
        missing = value is None or (isinstance(value, list) and None in value)
        if p.keyword in kw and missing:
            if p.default is REQUIRED:
                raise SpecError(f"{plan.method.name} parameter {p.name!r} for tensor "
                                f"{job.out_name}", "no filter matches this tensor",
                                "Add a filter entry without `filter:` as the default")
            kw[p.keyword] = ([p.default if v is None else v for v in value]
                             if isinstance(value, list) else p.default)
    return kw


def _tensor_kwargs(job: TensorJob, files: Mapping[str, ModelWeights],
                   like: torch.Tensor) -> dict[str, Any]:
    plan = job.plan
    kw = _resolved(plan, job)
    for key, paths in plan.tensor_files.items():
        kw[key] = [_file_tensor(files[p], job.sources[m], like)
                   for p, m in zip(paths, plan.inputs, strict=True)]
    for key, path in plan.base_tensor_files.items():
        kw[key] = _file_tensor(files[path], job.sources[plan.base], like)
    return kw


def _open_all(plans: list[Plan], ids: list[str], resolve: Resolver, stack: ExitStack):
    models = {i: stack.enter_context(open_model(resolve(i))) for i in ids}
    paths = {p for plan in plans for ps in plan.tensor_files.values() for p in ps}
    paths |= {p for plan in plans for p in plan.base_tensor_files.values()}
    files = {p: stack.enter_context(open_model(p)) for p in sorted(paths)}
    return models, files


def whole_model_jobs(plan: Plan, names: list[str]) -> list[TensorJob]:
    """A ``models:`` recipe: every tensor from every model, ``t`` by layer position."""
    n = count_layers(names)
    return [TensorJob(name, plan, {m: name for m in plan.model_ids}, position(name, n))
            for name in names]


def _side(names, post: bool) -> list[str]:
    return [n for n in names if split_layer(n) is None and is_post(n) == post]


def slice_jobs(recipe: Recipe, plans: list[Plan],
               models: Mapping[str, ModelWeights]) -> list[TensorJob]:
    """A ``slices:`` recipe: the first slice's models give the tensors before the layers
    (t = 0), each slice its layers renumbered after the previous slice's (t = i / (n-1)),
    the last slice's models the tensors after the layers (t = 0 too), as mergekit 0.1.5."""
    jobs: list[TensorJob] = []
    first, last = plans[0], plans[-1]
    names0 = list(models[first.model_ids[0]].infos())
    for name in _side(names0, post=False):
        jobs.append(TensorJob(name, first, {m: name for m in first.model_ids}, 0.0))
    out_layer = 0
    for sl, plan in zip(recipe.slices, plans, strict=True):
        starts = {s.model: s.layer_range[0] for s in sl.sources}
        lead = plan.model_ids[0]
        by_layer = [split_layer(n) for n in models[lead].infos()]
        n = sl.n_layers
        for idx in range(n):
            here = [ln for ln in by_layer if ln is not None and ln.index == starts[lead] + idx]
            if not here:
                raise IncompatibleModelsError(
                    f"model {lead}", f"has no layer {starts[lead] + idx}",
                    "Use a layer_range inside the model's layers")
            t = idx / (n - 1) if n > 1 else 1.0
            for ln in here:
                sources = {m: ln.at(starts[m] + idx) for m in plan.model_ids}
                jobs.append(TensorJob(ln.at(out_layer), plan, sources, t))
            out_layer += 1
    names_last = list(models[last.model_ids[0]].infos())
    for name in _side(names_last, post=True):
        jobs.append(TensorJob(name, last, {m: name for m in last.model_ids}, 0.0))
    return jobs


def check_jobs(jobs: list[TensorJob], models: Mapping[str, ModelWeights]) -> None:
    """Every source tensor exists, with the first source's shape."""
    for job in jobs:
        ref = models[job.first].infos()[job.sources[job.first]]
        for m, name in job.sources.items():
            info = models[m].infos().get(name)
            if info is None:
                raise IncompatibleModelsError(
                    f"model {m}", f"has no tensor {name!r} (for output {job.out_name!r})",
                    "Merge only models of the same architecture")
            if tuple(info.shape) != tuple(ref.shape):
                raise IncompatibleModelsError(
                    f"model {m}", f"tensor {name!r} has shape {list(info.shape)} where "
                    f"{job.first}'s is {list(ref.shape)}",
                    "Merge only models of the same architecture")


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
    plans = recipe.plans()
    with ExitStack() as stack:
        models, files = _open_all(plans, recipe.model_ids, resolve, stack)
        reference = plans[0].model_ids[0]
        if recipe.slices:
            jobs = slice_jobs(recipe, plans, models)
        else:
            check_compatible(models, reference)
            jobs = whole_model_jobs(plans[0], list(models[reference].infos()))
        check_jobs(jobs, models)
        for path, m in files.items():
            _check_tensor_file(path, m, models[reference])
        tok_root = tokenizer_folder(recipe, models, reference, resolve)
        with output.AtomicFolder(out_dir, overwrite=overwrite) as folder:
            written = _stream(jobs, recipe, models, files, folder.tmp, max_shard_bytes,
                              progress)
            n_layers = count_layers(j.out_name for j in jobs) if recipe.slices else None
            _write_side(recipe, models, reference, folder.tmp, tok_root, n_layers)
            folder.commit()
    n_tensors, shard_files, total = written
    return MergeResult(Path(out_dir), recipe.method.name, tuple(recipe.model_ids), n_tensors,
                       tuple(shard_files), total, time.monotonic() - start)


def _copied(info) -> bool:
    """Integer buffers (position ids) and fp8 weights are not merged: copied as stored."""
    return not is_float(info.dtype) or itemsize(info.dtype) < 2


def _out_spec(info, dtype: torch.dtype | None) -> output.TensorSpec:
    keep = dtype is None or _copied(info)
    return output.TensorSpec(torch_dtype(info.dtype) if keep else dtype, tuple(info.shape))


def _release(job: TensorJob, models, files, file_names) -> None:
    """Drop the job's input pages: the merge then holds about one tensor per input,
    not every page of every input it has read so far."""
    for m, name in job.sources.items():
        models[m].release(name)
    plan = job.plan
    pairs = [(p, job.sources[m]) for ps in plan.tensor_files.values()
             for p, m in zip(ps, plan.inputs, strict=True)]
    pairs += [(p, job.sources[plan.base]) for p in plan.base_tensor_files.values()]
    for path, name in pairs:
        if name in file_names[path]:
            files[path].release(name)


def _stream(jobs, recipe, models, files, folder, max_bytes, progress):
    dtype = recipe.output_dtype
    by_model = {m: w.infos() for m, w in models.items()}
    infos = {j.out_name: by_model[j.first][j.sources[j.first]] for j in jobs}
    specs = {n: _out_spec(info, dtype) for n, info in infos.items()}
    file_names = {path: set(m.names()) for path, m in files.items()}
    if len(specs) < len(jobs):
        raise SpecError("merge recipe", "writes the same output tensor twice",
                        "Check that slices do not overlap in the output")
    shards = output.plan_shards([(n, s.nbytes) for n, s in specs.items()], max_bytes)
    with output.ShardWriter(folder, shards, specs) as writer:
        for job in tqdm(jobs, disable=not progress, desc="merge", unit="tensor"):
            writer.add(job.out_name, _merged(job, infos[job.out_name], recipe, models, files))
            _release(job, models, files, file_names)
        return len(jobs), writer.finish(), writer.total_bytes


def _merged(job: TensorJob, info, recipe: Recipe, models, files) -> torch.Tensor:
    plan = job.plan
    first = models[job.first].tensor(job.sources[job.first])
    if _copied(info):
        return first
    base = models[plan.base].tensor(job.sources[plan.base]) if plan.base else None
    tensors = [models[i].tensor(job.sources[i]) for i in plan.inputs]
    kwargs = _tensor_kwargs(job, files, first)
    return merge_tensor(plan.method, job.out_name, base, tensors, kwargs,
                        seed=recipe.seed, out_dtype=recipe.output_dtype or first.dtype)


def _write_side(recipe: Recipe, models, reference: str, folder: Path, tok_root: Path,
                n_layers: int | None) -> None:
    config = dict(models[reference].metadata.config or {})
    if n_layers is not None:  # a frankenmerge has as many layers as its slices give
        for key in LAYER_COUNT_KEYS:
            if isinstance(config.get(key), int):
                config[key] = n_layers
    output.write_config(folder, config, recipe.output_dtype)
    output.copy_side_files(Path(tok_root), folder)
    method = recipe.method
    about = (f"This model is a merge made with lineage using **{method.name}** "
             f"({method.paper}, {method.url}).")
    title = recipe.name or f"{method.name} merge"
    text = output.card_text(recipe.model_ids, recipe.to_yaml(), title, about)
    (folder / "README.md").write_text(text, encoding="utf-8")
