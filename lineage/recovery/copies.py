"""Copies: byte-identical re-uploads and dtype casts attach as leaves to their source.

A group of identical models (same tensor names and content hashes) has one source; the
rest are re-uploads. Which one is the source is not in the bytes, so evidence is ranked:
a card of the group naming a member as its base, then the member whose organisation
holds more models of the architecture (re-uploads land in other accounts), then the
earliest creation time, then the id. A cast copy differs from its source by rounding
only (relative distance ~1e-3) in a lower-precision dtype; it points at the more
precise model.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from lineage.recovery.graph import RecoveredEdge
from lineage.recovery.inputs import PRECISION, ModelInput

CAST_DISTANCE = 0.02  # relative distance below which two models are copies of each other


def source_rank(model: ModelInput, named: Counter, org_sizes: Counter) -> tuple:
    """Sort key: smaller is a likelier source. `named`: how many cards name each id as
    their base; `org_sizes`: models per organisation."""
    created = model.created_at if model.created_at is not None else float("inf")
    return (-named[model.model_id], -org_sizes[model.org], created, model.model_id)


def exact_duplicates(
    models: Sequence[ModelInput], named: Counter, org_sizes: Counter
) -> tuple[list[ModelInput], list[RecoveredEdge]]:
    """(one representative per content, re-upload edges source -> copy)."""
    groups: dict[tuple, list[ModelInput]] = defaultdict(list)
    for m in models:
        groups[m.content_digest() or (("", m.model_id),)].append(m)
    reps, edges = [], []
    for group in groups.values():
        group = sorted(group, key=lambda m: source_rank(m, named, org_sizes))
        reps.append(group[0])
        for copy in group[1:]:
            evidence = {"identical_tensors": len(copy.tensors), "rule": "content hash"}
            edges.append(RecoveredEdge(group[0].model_id, copy.model_id, "reupload", 1.0,
                                       evidence))
    return reps, edges


def cast_copies(
    models: Sequence[ModelInput], rel: np.ndarray, named: Counter, org_sizes: Counter
) -> tuple[list[int], list[RecoveredEdge]]:
    """(rows kept as tree nodes, cast/near-copy edges) for one group's [n, n] `rel`."""
    n = len(models)
    parent = list(range(n))
    order = sorted(range(n), key=lambda i: _copy_rank(models[i], named, org_sizes))
    edges = []
    for pos, j in enumerate(order):  # most precise / likeliest source first
        for i in order[:pos]:
            if parent[i] == i and rel[i, j] < CAST_DISTANCE:
                parent[j] = i
                a, b = models[i], models[j]
                relation = "quantized" if a.dtype != b.dtype else "reupload"
                evidence = {"relative_distance": float(rel[i, j]), "dtype": [a.dtype, b.dtype],
                            "rule": "near-zero distance"}
                conf = float(1.0 - rel[i, j] / CAST_DISTANCE)
                edges.append(RecoveredEdge(a.model_id, b.model_id, relation, conf, evidence))
                break
    return [i for i in range(n) if parent[i] == i], edges


def _copy_rank(model: ModelInput, named: Counter, org_sizes: Counter) -> tuple:
    return (-PRECISION.get(model.dtype or "", 0), *source_rank(model, named, org_sizes))
