"""Copies: byte-identical re-uploads and dtype casts attach as leaves to their source.

Identity is bytes. A group of identical models (same tensor names and content hashes)
has one source and the rest are re-uploads. Which one is the source is not in the
bytes, so evidence is ranked: a card of the group naming a member as its base (a copy
declaring where it came from), then the member whose organisation holds more models of
the architecture (re-uploads land in other accounts), then the earliest Hub creation
time (local folder times say nothing and are not loaded), then the id, so the same
catalog always gives the same edges. Cards of models outside the group do not count:
a fine-tune whose card names a mirror was trained from the mirror's bytes, which are
the original's; it says which copy its author downloaded, not which was uploaded first
(two held-out draws, 1012/0 and 1013/18, had a mirror called the source at 0.9 so).

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


CARD_NAMES_SOURCE = 0.9  # a hand-set prior, not fitted: cards are honest more often than not


def _source_evidence(group: list[ModelInput], named: Counter, org_sizes: Counter) -> tuple:
    """(rule that picked the source, confidence of the direction)."""
    first, second = group[0], group[1]
    if named[first.model_id] > named[second.model_id]:
        return "card names the source", CARD_NAMES_SOURCE
    if org_sizes[(first.arch_signature, first.org)] > org_sizes[(second.arch_signature,
                                                                    second.org)]:
        return "organisation with more models of this architecture", 0.75
    if first.created_at is not None and first.created_at != second.created_at:
        return "earlier Hub creation time", 0.75
    return "no evidence of direction (id order)", 1.0 / len(group)  # each equally likely


def exact_duplicates(
    models: Sequence[ModelInput], org_sizes: Counter
) -> tuple[list[ModelInput], list[RecoveredEdge]]:
    """(one representative per content, re-upload edges source -> copy)."""
    groups: dict[tuple, list[ModelInput]] = defaultdict(list)
    for m in sorted(models, key=lambda m: m.model_id):
        groups[m.content_digest() or (("", m.model_id),)].append(m)
    reps, edges = [], []
    for group in groups.values():
        named = declared_sources(group)
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


def declared_sources(group: Sequence[ModelInput]) -> Counter:
    """How many members' cards name each other member of a copy group as their base."""
    ids = {m.model_id for m in group}
    return Counter(b for m in group for b in set(m.card_base_models)
                   if b in ids and b != m.model_id)


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
        sources = _cast_sources(models, features, rel, parent, j)
        if not sources:
            continue
        i, bound, upcast, confidence, rule = _choose_source(models[j], models, sources,
                                                            features)
        parent[j] = i
        relation = "reupload" if upcast else "quantized"
        evidence = {"relative_distance": float(rel[i, j]), "rounding_bound": bound,
                    "dtype": [models[i].dtype, models[j].dtype],
                    "rule": "upcast (values exact in the source dtype)" if upcast
                    else "rounding signature of the cast"}
        if len(sources) > 1:
            evidence["sources_within_rounding"] = len(sources)
            evidence["source_rule"] = rule
        edges.append(RecoveredEdge(models[i].model_id, models[j].model_id, relation,
                                   confidence, evidence))
    return [i for i in range(n) if parent[i] == i], edges


def _choose_source(cast: ModelInput, models: Sequence[ModelInput], sources: list,
                   features: GroupFeatures) -> tuple[int, float, bool, float, str]:
    """(source, bound, upcast, confidence, rule): the likeliest of the sources within
    rounding, by distance (source_probabilities) and the cast's own card, which names
    its source with odds CARD_NAMES_SOURCE : 1 - CARD_NAMES_SOURCE."""
    p = source_probabilities(np.array([c[3] for c in sources]),
                             effective_coordinates(features))
    claimed = np.array([models[c[0]].model_id in cast.card_base_models for c in sources])
    odds = p * np.where(claimed, CARD_NAMES_SOURCE, 1.0 - CARD_NAMES_SOURCE)
    if claimed.any():
        p = odds / odds.sum()
    k = int(np.argmax(p))
    i, bound, upcast, _ = sources[k]
    rule = ("distance and the cast's card" if claimed[k] else
            "distance, against the cast's card" if claimed.any() else "distance")
    return i, bound, upcast, min(float(p[k]), CAST_CONFIDENCE), rule


def _cast_sources(models, features, rel, parent, j) -> list[tuple[int, float, bool, float]]:
    """(i, bound, upcast, relative distance) for every model j may be a cast of."""
    found = []
    for i in range(len(models)):
        if i == j or parent[i] != i or models[i].dtype == models[j].dtype:
            continue
        # i more precise: i -> j is a cast. j more precise: only an exact upcast of i
        # (j's own rounding) qualifies. The bound is the same rounding either way.
        upcast = precision_rank(models[i].dtype) <= precision_rank(models[j].dtype)
        bound = cast_bound(features, i, models[j].dtype)
        if rel[i, j] <= bound:
            found.append((i, float(bound), upcast, float(rel[i, j])))
    return found


def source_probabilities(distances: np.ndarray, coordinates: float) -> np.ndarray:
    """P(each candidate is the cast's source | its relative distance to the cast).

    The true source s lies at the rounding distance r from its cast; another candidate
    k = s + delta at |e - delta|, whose square exceeds r^2 by g = |delta|^2 - 2 <e, delta>.
    Rounding errors are independent of delta, so over the D coordinates the distances
    are measured on, <e, delta> ~ N(0, r^2 |delta|^2 / D): g ~ N(+|delta|^2, 4 r^2 |delta|^2 / D)
    when s is the source and N(-|delta|^2, same) when k is. The log likelihood ratio is
    g D / (2 r^2), whatever |delta|: a softmax of -d_i^2 D / (2 r^2). A fine-tune that
    barely moved (a UNet after a few steps at 1e-5) sits as near as its parent, and
    then the probability says the distance cannot choose."""
    r2 = max(float(np.min(distances)) ** 2, 1e-300)
    logits = -(distances**2 - r2) * coordinates / (2.0 * r2)
    weights = np.exp(logits - logits.max())
    return weights / weights.sum()


def effective_coordinates(features: GroupFeatures) -> float:
    """D for source_probabilities: relative_distance weighs every matrix equally, so the
    chance term averages over matrices, each of min(numel, sketch width) coordinates:
    D = M^2 / sum_q 1 / D_q."""
    per = [min(float(n), float(s.shape[1])) for n, s in
           zip(features.numel, features.sketches, strict=True)]
    return len(per) ** 2 / sum(1.0 / max(d, 1.0) for d in per) if per else 1.0


def _copy_rank(model: ModelInput, named: Counter, org_sizes: Counter) -> tuple:
    return (-precision_rank(model.dtype), *source_rank(model, named, org_sizes))
