"""Turn a user's recipe into what the merge worker needs: every model reference mapped
to a local path, ``fisher: catalog`` replaced by the registered Fisher file, the output's
model id, and a hash that says whether an existing output is already this merge.

All catalog reads happen here, on the driver; the worker gets plain paths only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog.artifacts import FISHER, latest_artifact
from catalog.resolve import CatalogResolver
from lineage.errors import ModelNotFoundError, SpecError
from lineage.merge import Recipe, load_recipe

FROM_CATALOG = "catalog"


@dataclass(frozen=True)
class PathMap:
    """A picklable resolver over references resolved in advance (refs it was not given
    are taken as paths)."""

    paths: Mapping[str, str]

    def __call__(self, ref: str) -> Path:
        return Path(self.paths.get(str(ref), ref))


@dataclass(frozen=True)
class PreparedMerge:
    recipe: Recipe  # fishers resolved to paths
    paths: dict[str, str]  # model reference -> local folder
    parent_ids: dict[str, str]  # model reference -> catalog id (the reference if unknown)
    model_id: str
    recipe_hash: str

    @property
    def resolver(self) -> PathMap:
        return PathMap(self.paths)


def _fisher_path(resolver: CatalogResolver, model_ref: str) -> str:
    if resolver.catalog is None:
        raise SpecError(f"model {model_ref!r}: `fisher: catalog`",
                        "asks for the registered Fisher but no catalog was given",
                        "Pass --catalog DIR, or give the Fisher file's path")
    model_id = resolver.catalog_id(model_ref) or model_ref
    found = latest_artifact(resolver.catalog, model_id, FISHER)
    if found is None:
        raise ModelNotFoundError(
            f"Fisher of model {model_id!r}",
            f"is not registered in catalog {resolver.catalog.root}",
            f"Compute it: `lineage fisher {model_ref} --data DATA --out F.safetensors "
            f"--catalog {resolver.catalog.root}`")
    return found.path


def resolve_fishers(data: dict[str, Any], resolver: CatalogResolver) -> dict[str, Any]:
    """A recipe dict with every ``fisher: catalog`` (per model, or global as a default for
    every model) replaced by that model's registered Fisher path."""
    data = json.loads(json.dumps(data))  # a deep copy of plain YAML data
    global_params = data.get("parameters") or {}
    from_global = global_params.get("fisher") == FROM_CATALOG
    if from_global:
        del global_params["fisher"]
    entries = list(data.get("models") or [])
    entries += [src for sl in data.get("slices") or [] for src in sl.get("sources") or []]
    for entry in entries:
        params = entry.setdefault("parameters", {})
        is_base = entry["model"] == data.get("base_model")
        wants = params.get("fisher") == FROM_CATALOG or (from_global and "fisher" not in params
                                                         and not is_base)
        if wants:
            params["fisher"] = _fisher_path(resolver, entry["model"])
    return data


def _hash(recipe: Recipe, paths: Mapping[str, str]) -> str:
    blob = json.dumps({"recipe": recipe.to_dict(), "paths": dict(paths)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def prepare_merge(recipe: Recipe | Mapping[str, Any] | str | Path, out: str | Path,
                  resolver: CatalogResolver) -> PreparedMerge:
    """Validate ``recipe``, resolve its models and Fishers; the output id is the recipe's
    ``name``, else the output folder's name."""
    parsed = load_recipe(recipe)
    resolved = Recipe.from_dict(resolve_fishers(parsed.to_dict(), resolver))
    refs = list(resolved.model_ids)
    if resolved.tokenizer_source not in (None, "base", "union"):
        refs.append(resolved.tokenizer_source)
    paths = {ref: str(resolver(ref)) for ref in refs}
    parent_ids = {ref: resolver.catalog_id(ref) or ref for ref in resolved.model_ids}
    model_id = resolved.name or Path(out).resolve().name
    return PreparedMerge(resolved, paths, parent_ids, model_id, _hash(resolved, paths))
