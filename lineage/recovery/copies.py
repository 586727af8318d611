"""Copies: byte-identical re-uploads and dtype casts attach as leaves to their source.

Identity is bytes. A group of identical models (same tensor names and content hashes)
has one source and the rest are re-uploads. Which one is the source is not in the
bytes, so evidence is ranked: a card of the group naming a member as its base, then the
member whose organisation holds more models of the architecture (re-uploads land in
other accounts), then the earliest Hub creation time (local folder times say nothing
and are not loaded), then the id, so the same catalog always gives the same edges.

Two models whose bytes differ in the same dtype are never copies, however close: a
short, low-learning-rate fine-tune is a fine-tune. A cast is recognised by its rounding
signature (lineage.recovery.rounding): rounding to a dtype with p mantissa bits moves
every weight by at most 2^-(p+1) of itself, so a cast copy lies within that relative
distance of its source, and a model outside it is not a cast of it. Values equal to
the more precise dtype's rounding mean an upcast: the less precise model is the source.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from lineage.recovery.features import GroupFeatures
from lineage.recovery.graph import RecoveredEdge
from lineage.recovery.inputs import ModelInput
from lineage.recovery.rounding import precision_rank, rounding_bound

# A cast is a deterministic function of its source: when the bound holds, the only
# alternative is a different model within rounding of it, which no training step makes.
CAST_CONFIDENCE = 0.99
SKETCH_SIGMAS = 3.0  # sketch-estimated distances are trusted to this many std devs


def source_rank(model: ModelInput, named: Counter, org_sizes: Counter) -> tuple:
    """Sort key: smaller is a likelier source. `named`: how many cards name each id as
    their base; `org_sizes`: models per (architecture, organisation)."""
    created = model.created_at if model.created_at is not None else float("inf")
    return (-named[model.model_id], -org_sizes[(model.arch_signature, model.org)], created,
            model.model_id)


def _source_evidence(group: list[ModelInput], named: Counter, org_sizes: Counter) -> tuple:
    """(rule that picked the source, confidence of the direction)."""
    first, second = group[0], group[1]
    if named[first.model_id] > named[second.model_id]:
        return "card names the source", 0.9
    if org_sizes[(first.arch_signature, first.org)] > org_sizes[(second.arch_signature,
                                                                    second.org)]:
        return "organisation with more models of this architecture", 0.75
    if first.created_at is not None and first.created_at != second.created_at:
        return "earlier Hub creation time", 0.75
    return "no evidence of direction (id order)", 0.5


def exact_duplicates(
    models: Sequence[ModelInput], named: Counter, org_sizes: Counter
) -> tuple[list[ModelInput], list[RecoveredEdge]]:
    """(one representative per content, re-upload edges source -> copy)."""
    groups: dict[tuple, list[ModelInput]] = defaultdict(list)
    for m in sorted(models, key=lambda m: m.model_id):
        groups[m.content_digest() or (("", m.model_id),)].append(m)
    reps, edges = [], []
    for group in groups.values():
        group = sorted(group, key=lambda m: source_rank(m, named, org_sizes))
        reps.append(group[0])
        if len(group) == 1:
            continue
        rule, conf = _source_evidence(group, named, org_sizes)
        for copy in group[1:]:
            evidence = {"identical_tensors": len(copy.tensors), "rule": "content hash",
                        "source_rule": rule}
            edges.append(RecoveredEdge(group[0].model_id, copy.model_id, "reupload", conf,
                                       evidence))
    return reps, edges


def sketch_margin(features: GroupFeatures) -> float:
    """Multiplier on a distance bound covering the sketch's estimation error: a squared
    distance from a count-sketch of width w has relative std sqrt(2 / w); matrices of at
    most w elements are sketched exactly (margin 1)."""
    widths = [s.shape[1] for s, n in zip(features.sketches, features.numel, strict=True)
              if s.shape[1] < n]
    if not widths:
        return 1.0
    return float(np.sqrt(1.0 + SKETCH_SIGMAS * np.sqrt(2.0 / min(widths))))


def cast_bound(features: GroupFeatures, source: int, dtype: str | None) -> float:
    """Largest relative distance (distance.relative_distance) a cast of model `source`
    to `dtype` can have: the rounding bound at the source's smallest matrix RMS."""
    rms = np.sqrt(features.sq_norms[source] / features.numel)
    positive = rms[rms > 0]
    floor = float(positive.min()) if positive.size else 0.0
    return rounding_bound(dtype, floor) * sketch_margin(features)


def cast_copies(
    models: Sequence[ModelInput], features: GroupFeatures, rel: np.ndarray,
    named: Counter, org_sizes: Counter,
) -> tuple[list[int], list[RecoveredEdge]]:
    """(rows kept as tree nodes, cast edges) for one group's [n, n] relative distances."""
    n = len(models)
    parent = list(range(n))
    edges = []
    order = sorted(range(n), key=lambda i: _copy_rank(models[i], named, org_sizes))
    for j in order:  # most precise first: a source is settled before its casts
        best = _best_source(models, features, rel, parent, j)
        if best is None:
            continue
        i, bound, upcast = best
        parent[j] = i
        relation = "reupload" if upcast else "quantized"
        evidence = {"relative_distance": float(rel[i, j]), "rounding_bound": bound,
                    "dtype": [models[i].dtype, models[j].dtype],
                    "rule": "upcast (values exact in the source dtype)" if upcast
                    else "rounding signature of the cast"}
        edges.append(RecoveredEdge(models[i].model_id, models[j].model_id, relation,
                                   CAST_CONFIDENCE, evidence))
    return [i for i in range(n) if parent[i] == i], edges


def _best_source(models, features, rel, parent, j) -> tuple[int, float, bool] | None:
    """The model j is a cast of (closest relative to the bound), or None."""
    best, best_score = None, np.inf
    for i in range(len(models)):
        if i == j or parent[i] != i or models[i].dtype == models[j].dtype:
            continue
        if precision_rank(models[i].dtype) > precision_rank(models[j].dtype):  # i -> j
            bound, upcast = cast_bound(features, i, models[j].dtype), False
        else:  # j more precise: only an exact upcast of i (j's own rounding) qualifies
            bound, upcast = cast_bound(features, i, models[j].dtype), True
        score = rel[i, j] / bound
        if score <= 1.0 and score < best_score:
            best, best_score = (i, float(bound), upcast), score
    return best


def _copy_rank(model: ModelInput, named: Counter, org_sizes: Counter) -> tuple:
    return (-precision_rank(model.dtype), *source_rank(model, named, org_sizes))
