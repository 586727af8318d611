"""Kinship between models: exact streaming metrics, sketch estimates, all pairs at scale.

- `kinship(a, b, base)`: exact Model Kinship (cs, pcc, ed of deltas) and weight-space
  distances (l2, MoTHer's mother), streaming tensor by tensor in float64.
- `estimate_kinship(SketchedModel...)`, `estimate_from_model_sketches(...)`: the same
  metrics from linear sketches only, no weights read.
- `topk_pairs`, `all_pairs`, `topk_within_blocks`: blocked matrix products over many
  sketches, on CPU or GPU.
- `find_duplicates(rows)`: exact duplicates and shared frozen tensors from content hashes.
"""

from lineage.kinship.allpairs import (
    PAIR_METRICS,
    Pairs,
    all_pairs,
    delta_sketches,
    iter_pair_tiles,
    topk_pairs,
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
    "topk_within_blocks",
]
