"""One merge job: prepare (catalog reads) -> merge (here or on Ray) -> register.

Idempotent: the output folder gets a ``merge_job.json`` naming the recipe hash; a re-run
of the same recipe to the same folder finds it, skips the merge, and registration finds
the revision and edges already cataloged, so no row is duplicated (a runs row records
each invocation).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from catalog import Catalog
from catalog.resolve import CatalogResolver
from catalog.runs import finish_run, start_run
from jobs.merging.executors import EXECUTORS, merge_here, merge_on_ray
from jobs.merging.prepare import PreparedMerge, prepare_merge
from jobs.merging.register import Registered, register_merge
from lineage.errors import SpecError, UnknownNameError
from lineage.merge import MergeResult, Recipe

MARKER = "merge_job.json"


@dataclass
class MergeJobReport:
    model_id: str
    out_dir: Path
    method: str
    parents: dict[str, str]  # reference -> catalog id
    recipe_hash: str
    merged: bool  # False: the output was already this merge
    result: MergeResult | None = None
    registered: Registered | None = None
    run_id: str | None = None
    placement: dict[str, Any] = field(default_factory=dict)


def _is_up_to_date(out: Path, recipe_hash: str) -> bool:
    marker = out / MARKER
    return marker.is_file() and json.loads(marker.read_text()).get("recipe_hash") == recipe_hash


def _check_out(out: Path, prepared: PreparedMerge, overwrite: bool) -> bool:
    """True when the merge must run; refuses to replace an unrelated folder."""
    if _is_up_to_date(out, prepared.recipe_hash):
        return False
    if out.exists() and not overwrite:
        raise SpecError(f"output folder {out}",
                        "already exists and holds something other than this recipe's merge",
                        "Choose a new folder, or pass --overwrite to replace it")
    return True


def _write_marker(out: Path, prepared: PreparedMerge) -> None:
    marker = {"model_id": prepared.model_id, "recipe_hash": prepared.recipe_hash,
              "parents": prepared.parent_ids, "paths": prepared.paths,
              "merged_at": datetime.now(UTC).isoformat()}
    (out / MARKER).write_text(json.dumps(marker, indent=2) + "\n")


def _merge(prepared: PreparedMerge, out: Path, executor: str, overwrite: bool):
    recipe = prepared.recipe.to_dict()
    if executor == "ray":
        return merge_on_ray(recipe, out, prepared.paths, overwrite)
    return merge_here(recipe, str(out), prepared.paths, overwrite), {"executor": "local"}


def run_merge_job(
    recipe: Recipe | dict | str | Path,
    out: str | Path,
    *,
    catalog: Catalog | None = None,
    register: bool = True,
    overwrite: bool = False,
    executor: str = "local",
    resolver: CatalogResolver | None = None,
) -> MergeJobReport:
    """Merge ``recipe`` into ``out`` and (with a catalog, unless ``register`` is False)
    index the output and record its merge edges and a runs row.

    Model references are catalog ids or local paths; ``fisher: catalog`` entries take the
    model's registered Fisher. ``executor``: "local" (this process) or "ray" (a Ray task
    on the cluster ray.init connected to).
    """
    if executor not in EXECUTORS:
        raise UnknownNameError.of("merge executor", executor, EXECUTORS)
    out = Path(out).resolve()
    resolver = resolver or CatalogResolver(catalog)
    prepared = prepare_merge(recipe, out, resolver)
    report = MergeJobReport(prepared.model_id, out, prepared.recipe.merge_method,
                            prepared.parent_ids, prepared.recipe_hash, merged=False)
    run_id = None
    if catalog is not None and register:
        run_id = start_run(catalog, "merge", {"out": str(out), "model_id": prepared.model_id,
                                              "recipe_hash": prepared.recipe_hash,
                                              "executor": executor})
    status = "failed"
    try:
        if _check_out(out, prepared, overwrite):
            report.result, report.placement = _merge(prepared, out, executor, overwrite=True)
            _write_marker(out, prepared)
            report.merged = True
        if run_id is not None:
            report.registered = register_merge(catalog, out, prepared, run_id)
        status = "succeeded"
    finally:
        if run_id is not None:
            finish_run(catalog, run_id, status)
    report.run_id = run_id
    return report
