"""Kinship between models: exact streaming metrics, sketch estimates, all pairs at scale.

- `kinship(a, b, base)`: exact Model Kinship (cs, pcc, ed of deltas) and weight-space
  distances (l2, MoTHer's mother), streaming tensor by tensor in float64.
- `estimate_kinship(SketchedModel...)`, `estimate_from_model_sketches(...)`: the same
  metrics from linear sketches only, no weights read.
- `topk_pairs`, `all_pairs`, `topk_within_blocks`: blocked matrix products over many
  sketches, on CPU or GPU.
- `find_duplicates(rows)`: exact duplicates and shared frozen tensors from content hashes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Lazy exports (PEP 562): `lineage kinship --help` and the metric registry must not pay
# for importing torch; each name loads its module on first use.
_EXPORTS = {
    "PAIR_METRICS": "allpairs",
    "Pairs": "allpairs",
    "all_pairs": "allpairs",
    "delta_sketches": "allpairs",
    "iter_pair_tiles": "allpairs",
    "topk_pairs": "allpairs",
    "topk_rows": "allpairs",
    "topk_within_blocks": "allpairs",
    "DuplicateReport": "duplicates",
    "SharedTensors": "duplicates",
    "find_duplicates": "duplicates",
    "kinship": "exact",
    "resolve_local": "exact",
    "DEFAULT_METRICS": "metrics",
    "METRICS": "metrics",
    "parse_metrics": "metrics",
    "KinshipResult": "result",
    "LayerKinship": "result",
    "SketchedModel": "sketch_estimates",
    "estimate_from_model_sketches": "sketch_estimates",
    "estimate_kinship": "sketch_estimates",
    "PairStats": "stats",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'lineage.kinship' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"lineage.kinship.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from lineage.kinship.allpairs import (
        PAIR_METRICS,
        Pairs,
        all_pairs,
        delta_sketches,
        iter_pair_tiles,
        topk_pairs,
        topk_rows,
        topk_within_blocks,
    )
    from lineage.kinship.duplicates import DuplicateReport, SharedTensors, find_duplicates
    from lineage.kinship.exact import kinship, resolve_local
    from lineage.kinship.metrics import DEFAULT_METRICS, METRICS, parse_metrics
    from lineage.kinship.result import KinshipResult, LayerKinship
    from lineage.kinship.sketch_estimates import (
        SketchedModel,
        estimate_from_model_sketches,
        estimate_kinship,
    )
    from lineage.kinship.stats import PairStats

__all__ = [
    "DEFAULT_METRICS",
    "METRICS",
    "PAIR_METRICS",
    "DuplicateReport",
    "KinshipResult",
    "LayerKinship",
    "PairStats",
    "Pairs",
    "SharedTensors",
    "SketchedModel",
    "all_pairs",
    "delta_sketches",
    "estimate_from_model_sketches",
    "estimate_kinship",
    "find_duplicates",
    "iter_pair_tiles",
    "kinship",
    "parse_metrics",
    "resolve_local",
    "topk_pairs",
    "topk_rows",
    "topk_within_blocks",
]
