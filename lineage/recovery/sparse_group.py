"""The group stage for a large architecture group, on candidate pairs (candidates.py).

Same rules as the dense stage (recover._split_group), read on the candidate pairs only:
  casts: copies.cast_copies' rounding signature, tried on candidate pairs (a cast lies
    within ~1e-3 relative distance of its source: its nearest neighbour by far);
  trees: cluster.py's significance test on the exact recomputed centred cosine, with
    the same Bonferroni count n(n-1)/2. Not the count of pairs tested: the candidates are
    each model's nearest, chosen by a search over ALL pairs, so under the null they are
    the largest of the n(n-1)/2 cosines and the family is all pairs. The test reads the
    exact cosine (not the projected one), so the null sigma is cluster.py's;
  components: union-find over the significant candidate pairs. A related pair that is
    not a candidate is joined through the chain of neighbours between them (single
    linkage needs a path, not every pair).
Each component then goes through the dense per-component code; one larger than the
component limit gets a sparse spanning tree over its candidate pairs
(large_component.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from lineage.recovery.candidates import (
    CandidatePairs,
    candidate_pairs,
    pair_centred_cosines,
    pair_relative_distance,
)
from lineage.recovery.cluster import relation_threshold
from lineage.recovery.copies import CAST_CONFIDENCE, _copy_rank, sketch_margin
from lineage.recovery.distance import null_cosine_std
from lineage.recovery.features import GroupFeatures
from lineage.recovery.graph import RecoveredEdge
from lineage.recovery.inputs import ModelInput
from lineage.recovery.rounding import precision_rank, rounding_bound


@dataclass(frozen=True)
class SparseSplit:
    """One large group split into components, each with its candidate pairs."""

    components: list[np.ndarray]  # per component: group rows (int64), ascending
    pairs: list[CandidatePairs]  # per component: its pairs, in component-local indices
    edges: list[RecoveredEdge]  # cast edges
    info: dict


def split_sparse(
    members: Sequence[ModelInput], features: GroupFeatures, named: Counter,
    orgs: Counter, *, neighbours: int, threads: int = 1,
) -> SparseSplit:
    """Casts set aside, then tree components, from candidate pairs only."""
    pairs = candidate_pairs(features, neighbours, threads)
    rel = pair_relative_distance(features, pairs)
    keep, edges = sparse_cast_copies(members, features, pairs, rel, named, orgs)
    kept = np.zeros(features.n, dtype=bool)
    kept[keep] = True
    inner = pairs.take(kept[pairs.i] & kept[pairs.j])
    sigma = null_cosine_std(features)
    threshold = relation_threshold(sigma, len(keep))
    related = inner.take(pair_centred_cosines(features, inner) > threshold)
    labels = component_labels(features.n, related, kept)
    comps, comp_pairs = _components(labels, inner)
    info = {
        "models": len(members),
        "trees": len(comps),
        "cut": {"cosine_threshold": round(threshold, 6), "null_sigma": round(sigma, 6),
                "rule": "significance"},
        "stage": {"rule": "sparse candidate pairs (approximate nearest neighbours, exact "
                          "numbers recomputed)",
                  "neighbours": neighbours, "candidate_pairs": pairs.size,
                  "related_pairs": related.size},
    }
    return SparseSplit(comps, comp_pairs, edges, info)


def component_labels(n: int, related: CandidatePairs, kept: np.ndarray) -> np.ndarray:
    """int [n]: component of every kept model (-1 for casts), numbered in the order of
    each component's smallest row, as the dense stage numbers them."""
    graph = sparse.coo_matrix((np.ones(related.size), (related.i, related.j)), shape=(n, n))
    _, raw = connected_components(graph, directed=False)
    labels = np.full(n, -1, dtype=np.int64)
    rows = np.flatnonzero(kept)
    _, first, dense = np.unique(raw[rows], return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    labels[rows] = rank[dense]
    return labels


def _components(labels: np.ndarray, pairs: CandidatePairs
                ) -> tuple[list[np.ndarray], list[CandidatePairs]]:
    """Rows of each component and its own pairs in local indices, in one sort."""
    count = int(labels.max()) + 1 if labels.size and labels.max() >= 0 else 0
    order = np.argsort(labels, kind="stable")
    order = order[labels[order] >= 0]
    bounds = np.searchsorted(labels[order], np.arange(count + 1))
    local = np.full(labels.size, -1, dtype=np.int64)
    comps = []
    for c in range(count):
        rows = order[bounds[c]:bounds[c + 1]]
        local[rows] = np.arange(rows.size)
        comps.append(rows)
    same = (labels[pairs.i] == labels[pairs.j]) & (labels[pairs.i] >= 0)
    inside = pairs.take(same)
    lab = labels[inside.i]
    by = np.argsort(lab, kind="stable")
    inside = CandidatePairs(local[inside.i[by]], local[inside.j[by]], inside.sq[by])
    at = np.searchsorted(lab[by], np.arange(count + 1))
    comp_pairs = [inside.take(slice(at[c], at[c + 1])) for c in range(count)]
    return comps, comp_pairs


def cast_bounds(features: GroupFeatures, dtype: str | None) -> np.ndarray:
    """[n]: copies.cast_bound of every model as the source of a cast to `dtype`."""
    rms = np.sqrt(features.sq_norms / features.numel[None, :])
    floor = np.where(rms > 0, rms, np.inf).min(axis=1)
    floor = np.where(np.isfinite(floor), floor, 0.0)
    margin = sketch_margin(features)
    return np.array([rounding_bound(dtype, float(f)) for f in floor]) * margin


def sparse_cast_copies(
    models: Sequence[ModelInput], features: GroupFeatures, pairs: CandidatePairs,
    rel: np.ndarray, named: Counter, orgs: Counter,
) -> tuple[list[int], list[RecoveredEdge]]:
    """copies.cast_copies on candidate pairs: (rows kept as tree nodes, cast edges).
    Scores are vectorised; the sequential part (a source must not itself be a cast,
    settled most precise first) runs over the few pairs within a rounding bound."""
    dtypes = np.array([m.dtype or "" for m in models], dtype=object)
    src = np.concatenate([pairs.i, pairs.j])
    dst = np.concatenate([pairs.j, pairs.i])
    rel2 = np.concatenate([rel, rel])
    differ = dtypes[src] != dtypes[dst]
    src, dst, rel2 = src[differ], dst[differ], rel2[differ]
    bound = np.zeros(src.size)
    for dtype in np.unique(dtypes[dst]) if dst.size else []:
        at = dtypes[dst] == dtype
        bound[at] = cast_bounds(features, dtype or None)[src[at]]
    score = rel2 / np.maximum(bound, 1e-300)
    ok = score <= 1.0
    src, dst, score, bound, rel2 = src[ok], dst[ok], score[ok], bound[ok], rel2[ok]
    n = len(models)
    parent = np.arange(n)
    edges = []
    options: dict[int, list[tuple[float, int, float, float]]] = {}
    for s, d, sc, b, r in zip(src.tolist(), dst.tolist(), score.tolist(), bound.tolist(),
                              rel2.tolist(), strict=True):
        options.setdefault(d, []).append((sc, s, b, r))
    order = sorted(options, key=lambda j: _copy_rank(models[j], named, orgs))
    for j in order:  # most precise first: a source is settled before its casts
        live = sorted(o for o in options[j] if parent[o[1]] == o[1])
        if not live:
            continue
        _, i, b, r = live[0]
        parent[j] = i
        upcast = precision_rank(models[i].dtype) <= precision_rank(models[j].dtype)
        evidence = {"relative_distance": float(r), "rounding_bound": float(b),
                    "dtype": [models[i].dtype, models[j].dtype],
                    "rule": "upcast (values exact in the source dtype)" if upcast
                    else "rounding signature of the cast"}
        edges.append(RecoveredEdge(models[i].model_id, models[j].model_id,
                                   "reupload" if upcast else "quantized", CAST_CONFIDENCE,
                                   evidence))
    return [i for i in range(n) if parent[i] == i], edges


def as_float64(features: GroupFeatures) -> GroupFeatures:
    """The per-component code computes in float64 (the group keeps float32 sketches to
    halve a 100k-model group's memory)."""
    return replace(features, sketches=[s.astype(np.float64) for s in features.sketches])
