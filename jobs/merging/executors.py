"""Where the merge itself runs: in this process, or in a Ray task.

On Ray the task asks for a whole GPU when the cluster has one (a GPU node also brings the
memory bandwidth and host RAM merges need), else for a fraction of a CPU, so that a
merge can share a small machine with other work. Only plain data crosses the boundary:
the recipe as a dict, the reference -> path map, the output folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jobs.merging.prepare import PathMap
from lineage.merge import MergeResult, Recipe, merge_models

CPU_FRACTION = 0.5
EXECUTORS = ("local", "ray")


def placement(resources: Mapping[str, float], cpu_fraction: float = CPU_FRACTION) -> dict:
    """Ray task options for the cluster's total ``resources`` (ray.cluster_resources())."""
    if resources.get("GPU", 0) >= 1:
        return {"num_gpus": 1, "num_cpus": 1}
    return {"num_gpus": 0, "num_cpus": cpu_fraction}


def merge_here(recipe: dict[str, Any], out: str, paths: Mapping[str, str],
               overwrite: bool) -> MergeResult:
    return merge_models(Recipe.from_dict(recipe), out, resolve=PathMap(dict(paths)),
                        progress=False, overwrite=overwrite)


def _merge_task(recipe: dict[str, Any], out: str, paths: Mapping[str, str],
                overwrite: bool) -> tuple[MergeResult, dict[str, Any]]:
    import ray

    result = merge_here(recipe, out, paths, overwrite)
    where = {"gpu_ids": [str(g) for g in ray.get_gpu_ids()],
             "node_id": ray.get_runtime_context().get_node_id()}
    return result, where


def merge_on_ray(recipe: dict[str, Any], out: str | Path, paths: Mapping[str, str],
                 overwrite: bool) -> tuple[MergeResult, dict[str, Any]]:
    """Run the merge as a Ray task on the connected cluster (ray.init already called)."""
    import ray

    options = placement(ray.cluster_resources())
    task = ray.remote(_merge_task).options(**options)
    result, where = ray.get(task.remote(recipe, str(out), dict(paths), overwrite))
    return result, {**where, "options": options}
