"""Merge recipes in mergekit's YAML shape.

    merge_method: ties
    base_model: org/base
    models:
      - model: org/base                 # listing the base is allowed, as in mergekit
      - model: org/math
        parameters: {weight: 1.0, density: 0.5}
      - model: org/code
        parameters: {weight: 0.5, density: 0.5}
    parameters: {normalize: true, lambda: 1.0}   # global; also defaults for per-model ones
    dtype: bfloat16                               # output dtype (mergekit: working dtype)
    seed: 0                                       # lineage: seed of DARE/DELLA masks

A per-model parameter is looked up under the model, then in the global ``parameters``,
then the method's default, exactly like mergekit. Any value may be a gradient (a list,
interpolated over the layers) or a list of ``{filter, value}`` (see ``settings``).

Instead of ``models:``, ``slices:`` assemble the output layer range by layer range
(mergekit's frankenmerges), each slice merging the same number of layers from its sources:

    slices:
      - sources: [{model: org/a, layer_range: [0, 24]}]
      - sources: [{model: org/b, layer_range: [8, 32]}]
    merge_method: passthrough

Source parameters win over the slice's ``parameters``, which win over the global ones.
The tensors before the layers (embeddings) are merged from the first slice's sources, the
ones after (final norm, lm_head) from the last slice's, as mergekit does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from lineage.errors import SpecError, UnknownNameError
from lineage.merge.registry import REQUIRED, MergeMethod, check_value, get_method

TOP_KEYS = ("merge_method", "base_model", "models", "slices", "parameters", "dtype",
            "out_dtype", "seed", "tokenizer_source", "name")
UNSUPPORTED_KEYS = ("modules", "tokenizer", "chat_template")
ENTRY_KEYS = ("model", "parameters")
SOURCE_KEYS = ("model", "layer_range", "parameters")
SLICE_KEYS = ("sources", "parameters")
MAX_SLICES = 1024
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16,
          "float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class ModelEntry:
    """One ``models:`` entry: a model reference and its own parameters."""

    model: str
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SliceSource:
    """One ``sources:`` entry of a slice: layers ``[start, stop)`` of a model."""

    model: str
    layer_range: tuple[int, int]
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Slice:
    """One ``slices:`` entry: its sources (same number of layers each) and parameters."""

    sources: tuple[SliceSource, ...]
    parameters: Mapping[str, Any] = field(default_factory=dict)

    @property
    def n_layers(self) -> int:
        start, stop = self.sources[0].layer_range
        return stop - start


@dataclass(frozen=True)
class Plan:
    """What the driver needs per tensor, resolved once from a recipe.

    ``inputs``: the models merged onto the base (the base itself excluded when the method
    takes a base). ``kwargs``: the function's keywords (per-model ones as lists).
    ``tensor_files``: keyword -> one safetensors path per input (Fishers), loaded per tensor;
    ``base_tensor_files``: keyword -> path, for the base model's entry (UBGM's H_0).
    """

    method: MergeMethod
    base: str | None
    inputs: tuple[str, ...]
    kwargs: Mapping[str, Any]
    tensor_files: Mapping[str, tuple[str, ...]]
    base_tensor_files: Mapping[str, str]

    @property
    def model_ids(self) -> tuple[str, ...]:
        """Every model this plan reads, base first."""
        return ((self.base,) if self.base else ()) + self.inputs


@dataclass(frozen=True)
class Recipe:
    """A validated merge recipe (see the module docstring for the YAML shape).

    Exactly one of ``models`` and ``slices`` is non-empty."""

    merge_method: str
    models: tuple[ModelEntry, ...] = ()
    base_model: str | None = None
    slices: tuple[Slice, ...] = ()
    parameters: Mapping[str, Any] = field(default_factory=dict)
    dtype: str | None = None
    out_dtype: str | None = None
    seed: int = 0
    tokenizer_source: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if bool(self.models) == bool(self.slices):
            raise _spec_error("models / slices", "a recipe has exactly one of them",
                              "Use `models:` for whole models or `slices:` for layer ranges")
        self.plans()  # validates everything once, at construction

    @property
    def method(self) -> MergeMethod:
        return get_method(self.merge_method)

    @property
    def model_ids(self) -> list[str]:
        """Every model the recipe reads, base first, each once."""
        ids = [self.base_model] if self.base_model else []
        listed = [e.model for e in self.models]
        listed += [src.model for sl in self.slices for src in sl.sources]
        for m in listed:
            if m not in ids:
                ids.append(m)
        return ids

    @property
    def output_dtype(self) -> torch.dtype | None:
        """``out_dtype`` or ``dtype``; None keeps each tensor's stored dtype."""
        key = self.out_dtype or self.dtype
        return DTYPES[key] if key else None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Recipe:
        return recipe_from_dict(data)

    @classmethod
    def from_yaml(cls, text: str) -> Recipe:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise SpecError("merge recipe", f"is not valid YAML ({e})", "Fix the YAML") from e
        return recipe_from_dict(data)

    @classmethod
    def from_file(cls, path: str | Path) -> Recipe:
        return cls.from_yaml(Path(path).read_text(encoding="utf-8"))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"merge_method": self.merge_method}
        if self.base_model:
            out["base_model"] = self.base_model
        if self.models:
            out["models"] = [
                {"model": e.model, **({"parameters": dict(e.parameters)} if e.parameters else {})}
                for e in self.models
            ]
        if self.slices:
            out["slices"] = [_slice_dict(sl) for sl in self.slices]
        for key in ("parameters", "dtype", "out_dtype", "tokenizer_source", "name"):
            value = getattr(self, key)
            if value:
                out[key] = dict(value) if key == "parameters" else value
        out["seed"] = self.seed
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def plan(self) -> Plan:
        """The plan of a ``models:`` recipe (of the first slice for a ``slices:`` one)."""
        return self.plans()[0]

    def plans(self) -> list[Plan]:
        """One plan per slice (a ``models:`` recipe is one slice of every layer)."""
        if self.models:
            return [make_plan(self)]
        return [_slice_plan(self, sl) for sl in self.slices]


def _slice_dict(sl: Slice) -> dict[str, Any]:
    sources = [{"model": s.model, "layer_range": list(s.layer_range),
                **({"parameters": dict(s.parameters)} if s.parameters else {})}
               for s in sl.sources]
    return {"sources": sources, **({"parameters": dict(sl.parameters)} if sl.parameters else {})}


def _slice_plan(recipe: Recipe, sl: Slice) -> Plan:
    entries = tuple(ModelEntry(s.model, s.parameters) for s in sl.sources)
    plan = make_plan(recipe, entries, {**recipe.parameters, **sl.parameters})
    if plan.base and plan.base not in {s.model for s in sl.sources}:
        raise _spec_error(f"slice with sources {[s.model for s in sl.sources]}",
                          f"does not list base_model {plan.base} among its sources, and "
                          f"{plan.method.name} needs the base's layers of the same range",
                          "Add the base model with a layer_range to every slice")
    return plan


def _spec_error(what: str, why: str, fix: str = "") -> SpecError:
    return SpecError(f"merge recipe: {what}", why, fix)


def _entry(raw: Any, i: int) -> ModelEntry:
    if isinstance(raw, str):
        return ModelEntry(raw)
    if not isinstance(raw, Mapping) or not isinstance(raw.get("model"), str):
        raise _spec_error(f"models[{i}] = {raw!r}", "each entry needs a `model:` string",
                          "Write `- model: org/name` with optional `parameters:`")
    for key in raw:
        if key not in ENTRY_KEYS:
            raise UnknownNameError.of("model entry key", str(key), ENTRY_KEYS)
    params = raw.get("parameters") or {}
    if not isinstance(params, Mapping):
        raise _spec_error(f"models[{i}].parameters", "must be a mapping")
    return ModelEntry(raw["model"], dict(params))


def _layer_range(raw: Any, where: str) -> tuple[int, int]:
    ok = (isinstance(raw, list | tuple) and len(raw) == 2
          and all(isinstance(v, int) and not isinstance(v, bool) for v in raw)
          and 0 <= raw[0] < raw[1] <= 100_000)
    if not ok:
        raise _spec_error(f"{where}.layer_range = {raw!r:.60}",
                          "must be [start, stop) with 0 <= start < stop",
                          "Write e.g. `layer_range: [0, 16]`")
    return int(raw[0]), int(raw[1])


def _source(raw: Any, where: str) -> SliceSource:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("model"), str):
        raise _spec_error(f"{where} = {raw!r:.80}", "each source needs a `model:` string",
                          "Write `- model: org/name` and `layer_range: [start, stop]`")
    for key in raw:
        if key not in SOURCE_KEYS:
            raise UnknownNameError.of("slice source key", str(key), SOURCE_KEYS)
    if "layer_range" not in raw:
        raise _spec_error(f"{where} ({raw['model']})", "has no layer_range",
                          "Add `layer_range: [start, stop]`")
    params = raw.get("parameters") or {}
    if not isinstance(params, Mapping):
        raise _spec_error(f"{where}.parameters", "must be a mapping")
    return SliceSource(raw["model"], _layer_range(raw["layer_range"], where), dict(params))


def _slices(raw: Any) -> tuple[Slice, ...]:
    if not isinstance(raw, list) or not raw or len(raw) > MAX_SLICES:
        raise _spec_error("slices", f"must be a list of 1 to {MAX_SLICES} slices",
                          "Add `slices: [- sources: [...]]`")
    out = []
    for i, sl in enumerate(raw):
        where = f"slices[{i}]"
        if not isinstance(sl, Mapping) or not isinstance(sl.get("sources"), list) \
                or not sl["sources"]:
            raise _spec_error(where, "needs a non-empty `sources:` list",
                              "Write `- sources: [{model: ..., layer_range: [a, b]}]`")
        for key in sl:
            if key not in SLICE_KEYS:
                raise UnknownNameError.of("slice key", str(key), SLICE_KEYS)
        sources = tuple(_source(s, f"{where}.sources[{j}]") for j, s in enumerate(sl["sources"]))
        lengths = {s.layer_range[1] - s.layer_range[0] for s in sources}
        if len(lengths) > 1:
            raise _spec_error(f"{where}", f"sources span different numbers of layers "
                              f"{sorted(lengths)}", "Give every source of a slice as many layers")
        if len({s.model for s in sources}) < len(sources):
            raise _spec_error(f"{where}", "lists a model twice",
                              "Use one source per model in a slice")
        params = sl.get("parameters") or {}
        if not isinstance(params, Mapping):
            raise _spec_error(f"{where}.parameters", "must be a mapping")
        out.append(Slice(sources, dict(params)))
    return tuple(out)


def recipe_from_dict(data: Any) -> Recipe:
    """Build and validate a :class:`Recipe` from parsed YAML (a mapping)."""
    if not isinstance(data, Mapping):
        raise _spec_error(repr(data)[:80], "a recipe is a mapping with merge_method and models")
    for key in data:
        if key in UNSUPPORTED_KEYS:
            raise _spec_error(f"`{key}`", "is a mergekit feature lineage does not support",
                              "Use `models:` (whole models, same architecture)")
        if key not in TOP_KEYS:
            raise UnknownNameError.of("recipe key", str(key), TOP_KEYS)
    if "merge_method" not in data:
        raise _spec_error("merge_method", "is missing", "Add `merge_method: <name>`")
    models = data.get("models")
    slices = data.get("slices")
    if slices is not None:
        if models is not None:
            raise _spec_error("models and slices", "are mutually exclusive (as in mergekit)",
                              "Keep one of them")
        models = []
    elif not isinstance(models, list) or not models:
        raise _spec_error("models", "must be a non-empty list", "Add `models: [- model: ...]`")
    for key in ("dtype", "out_dtype"):
        if data.get(key) is not None and data[key] not in DTYPES:
            raise UnknownNameError.of(key, str(data[key]), list(DTYPES))
    params = data.get("parameters") or {}
    if not isinstance(params, Mapping):
        raise _spec_error("parameters", "must be a mapping")
    seed = data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise _spec_error(f"seed = {seed!r}", "must be an integer")
    return Recipe(
        merge_method=str(data["merge_method"]),
        models=tuple(_entry(m, i) for i, m in enumerate(models)),
        slices=_slices(slices) if slices is not None else (),
        base_model=data.get("base_model"),
        parameters=dict(params),
        dtype=data.get("dtype"),
        out_dtype=data.get("out_dtype"),
        seed=seed,
        tokenizer_source=data.get("tokenizer_source"),
        name=data.get("name"),
    )


def load_recipe(source: str | Path | Mapping[str, Any] | Recipe) -> Recipe:
    """A Recipe from a Recipe, a mapping, a YAML file path or YAML text."""
    if isinstance(source, Recipe):
        return source
    if isinstance(source, Mapping):
        return recipe_from_dict(source)
    text = str(source)
    if "\n" not in text and (Path(text).is_file() or text.endswith((".yaml", ".yml"))):
        if not Path(text).is_file():
            raise _spec_error(f"file {text}", "does not exist", "Check the recipe path")
        return Recipe.from_file(text)
    return Recipe.from_yaml(text)


def _inputs(recipe: Recipe, method: MergeMethod, entries) -> list[ModelEntry]:
    if method.base == "ignored":
        inputs = list(entries)
    elif method.base == "optional" and not recipe.base_model:
        inputs = list(entries)
    else:
        if not recipe.base_model:
            raise _spec_error(f"{method.name} without base_model",
                              "this method merges task vectors relative to a base model",
                              "Add `base_model: <the common ancestor>`")
        inputs = [e for e in entries if e.model != recipe.base_model]
    lo, hi = method.min_models, method.max_models
    if len(inputs) < lo or (hi is not None and len(inputs) > hi):
        want = f"exactly {lo}" if lo == hi else f"at least {lo}"
        raise _spec_error(f"{method.name} with {len(inputs)} model(s) besides the base",
                          f"it takes {want}", "Change `models:`")
    return inputs


def _check_names(method: MergeMethod, entries, params) -> None:
    for key in params:
        if key not in method.global_names:
            raise UnknownNameError.of(f"{method.name} parameter", str(key), method.global_names)
    for e in entries:
        for key in e.parameters:
            if key not in method.model_names:
                raise UnknownNameError.of(
                    f"{method.name} per-model parameter (model {e.model})", str(key),
                    method.model_names)


def _value(method, p, entry: ModelEntry | None, params) -> Any:
    where = f"model {entry.model}" if entry else "parameters"
    if entry is not None and p.name in entry.parameters:
        return check_value(method, p, entry.parameters[p.name], where)
    if p.name in params:
        return check_value(method, p, params[p.name], "parameters")
    if p.default is REQUIRED:
        raise _spec_error(f"{method.name} parameter {p.name!r} for {where}", "is required",
                          f"Add `{p.name}:` ({p.doc})")
    return p.default


def _task_index(value: Any, inputs: list[ModelEntry]) -> int:
    if isinstance(value, int):
        return value
    names = [e.model for e in inputs]
    if value not in names:
        raise UnknownNameError.of("tall_mask task model", value, names)
    return names.index(value)


def make_plan(recipe: Recipe, entries=None, params=None) -> Plan:
    """Validate ``recipe`` (or one slice: its ``entries`` and merged ``params``) against
    its method and resolve every parameter."""
    method = get_method(recipe.merge_method)
    entries = recipe.models if entries is None else entries
    params = recipe.parameters if params is None else params
    _check_names(method, entries, params)
    inputs = _inputs(recipe, method, entries)
    base_entry = next((e for e in entries if e.model == recipe.base_model), None)
    kwargs: dict[str, Any] = {}
    files: dict[str, tuple[str, ...]] = {}
    base_files: dict[str, str] = {}
    for p in method.params:
        if not p.per_model:
            value = _value(method, p, None, params)
            kwargs[p.keyword] = _task_index(value, inputs) if p.name == "task" else value
            continue
        values = [_value(method, p, e, params) for e in inputs]
        if p.tensor_file:
            files[p.keyword] = tuple(values)
        else:
            kwargs[p.keyword] = values
        if p.base_arg and base_entry is not None and p.name in base_entry.parameters:
            v = check_value(method, p, base_entry.parameters[p.name], f"model {base_entry.model}")
            if p.tensor_file:
                base_files[p.base_arg] = v
            else:
                kwargs[p.base_arg] = v
    static = all(isinstance(w, float) for w in kwargs.get("weight", []))
    if method.name == "linear" and kwargs["normalize"] is True and static \
            and abs(sum(kwargs["weight"])) < 1e-12:
        raise _spec_error("linear weights sum to 0", "normalize divides by the sum of weights",
                          "Change the weights or set `normalize: false`")
    uses_base = method.base == "required" or (method.base == "optional" and recipe.base_model)
    return Plan(method, recipe.base_model if uses_base else None,
                tuple(e.model for e in inputs), kwargs, files, base_files)
