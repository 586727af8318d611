"""Model merging: one small per-tensor function per method, one registry, a streaming driver.

    from lineage.merge import merge_models, Recipe
    result = merge_models(Recipe.from_file("recipe.yaml"), "out/merged", resolve=my_resolver)

Submodules: ``registry`` (methods, parameters, papers), ``recipe`` (mergekit-shaped YAML),
``run`` (streaming driver), ``fisher`` (diagonal Fisher estimation), ``tall`` (TALL-mask
compression). Method functions live in ``task_arithmetic``, ``averaging``, ``slerp``,
``model_stock``, ``ubgm`` and ``tall_masks``.
"""

from lineage.merge.fisher import estimate_fisher, save_fisher
from lineage.merge.recipe import ModelEntry, Plan, Recipe, load_recipe
from lineage.merge.registry import (
    REGISTRY,
    MergeMethod,
    Param,
    describe,
    get_method,
    merge_tensor,
)
from lineage.merge.run import MergeResult, check_compatible, merge_models
from lineage.merge.tall import CompressResult, compress, reconstruct

__all__ = [
    "REGISTRY",
    "CompressResult",
    "MergeMethod",
    "MergeResult",
    "ModelEntry",
    "Param",
    "Plan",
    "Recipe",
    "check_compatible",
    "compress",
    "describe",
    "estimate_fisher",
    "get_method",
    "load_recipe",
    "merge_models",
    "merge_tensor",
    "reconstruct",
    "save_fisher",
]
