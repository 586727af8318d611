"""recover_graph: fingerprints in, Model Graph (a DAG with relations) out.

Pipeline, per architecture signature:
  exact duplicates (content hashes) -> re-upload leaves
  rounding signature of a cast to a less precise dtype -> cast leaves
  significantly related pairs (cosine far above independent inits') -> tree components
  per component: exact linear merges from sketches and sparse TIES/DARE merges on the
  coordinate samples, one explanation per dependency -> merge edges; the rest ->
  distance (rank-scaled, from the rank sketches, for LoRA-style low-rank differences)
  -> minimum
  spanning tree (placement) -> root chosen per tree by the direction signals with
  their signs integrated out (orientation)
PEFT adapters attach to the base their adapter config names. Every threshold comes
from physics (dtype rounding, near-orthogonality of independent weights) or from the
data of the tree at hand; none is fitted to a zoo. Only fingerprints are read, never
weights.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

import networkx as nx
import numpy as np

from lineage.recovery.calibration import merge_confidence, placement_probability
from lineage.recovery.cards import card_disagreements, undocumented_edges
from lineage.recovery.cluster import cluster_trees
from lineage.recovery.component import Component, prepare_component
from lineage.recovery.copies import cast_copies, exact_duplicates
from lineage.recovery.distance import (
    centred_cosines,
    matrix_sq_dists,
    null_cosine_std,
    relative_distance,
)
from lineage.recovery.features import group_features, matrix_names
from lineage.recovery.graph import RecoveredEdge, RecoveryResult
from lineage.recovery.inputs import CardEdge, ModelInput
from lineage.recovery.merges import MergeFit
from lineage.recovery.orient import orient_all
from lineage.recovery.rooting import Rooting, placement_margins


@dataclass(frozen=True)
class RecoveryOptions:
    find_merges: bool = True
    rank_neighbours: int = 4  # sketch ranks for each node's k nearest


def recover_graph(
    models: Sequence[ModelInput],
    card_edges: Sequence[CardEdge] = (),
    *,
    options: RecoveryOptions | None = None,
) -> RecoveryResult:
    """Recover the Model Graph of `models` from their fingerprints.

    `card_edges` (what cards and adapter configs declare) are one more direction signal
    and are checked against the weights; they never place an edge."""
    options = options or RecoveryOptions()
    models = sorted(models, key=lambda m: m.model_id)  # input order never matters
    named = Counter(b for m in models for b in m.card_base_models)
    orgs = Counter((m.arch_signature, m.org) for m in models)  # per architecture
    weighted = [m for m in models if not m.is_adapter and matrix_names(m)]
    reps, edges = exact_duplicates(weighted, named, orgs)
    groups: dict[str, list[ModelInput]] = defaultdict(list)
    for m in reps:
        groups[m.arch_signature].append(m)
    comps, info, notes = [], {}, []
    for sig, members in sorted(groups.items()):
        group_comps, group_edges, info[sig] = _split_group(sig, members, options, named,
                                                           orgs)
        comps += group_comps
        edges += group_edges
    rootings, direction = orient_all(comps, card_edges)
    for comp, rooting in zip(comps, rootings, strict=True):
        edges += _tree_edges(comp, rooting) + _merge_edges(comp, rooting)
    direction["groups"] = info
    edges += _adapter_edges(models, notes)
    known = {m.model_id for m in models}
    return RecoveryResult(
        edges=edges,
        trees=_trees(models, edges),
        card_disagreements=card_disagreements(edges, card_edges, known),
        undocumented=undocumented_edges(edges, card_edges),
        direction=direction,
        notes=notes,
    )


def _split_group(sig, members, options, named, orgs) -> tuple[list, list, dict]:
    """Casts set aside, then tree components of one architecture group."""
    features = group_features(members)
    sq = matrix_sq_dists(features)
    rel = relative_distance(features, sq)
    keep, edges = cast_copies(members, features, rel, named, orgs)
    kept = features.take(keep)
    clustering = cluster_trees(centred_cosines(kept, sq[:, keep][:, :, keep]),
                               null_cosine_std(kept))
    comps: list[Component] = []
    for label in np.unique(clustering.labels):
        rows = [keep[i] for i in np.flatnonzero(clustering.labels == label)]
        comps.append(prepare_component(features.take(rows), find=options.find_merges,
                                       rank_neighbours=options.rank_neighbours,
                                       group=sig, dtypes=[members[i].dtype for i in rows]))
    info = {
        "models": len(members),
        "trees": len(comps),
        "cut": {"cosine_threshold": round(clustering.threshold, 6),
                "null_sigma": round(clustering.sigma, 6), "rule": clustering.rule},
    }
    return comps, edges, info


def _tree_edges(comp: Component, rooting: Rooting) -> list[RecoveredEdge]:
    parents = rooting.parents
    margin = placement_margins(comp.dist, parents)
    edges = []
    for c, p in enumerate(parents):
        if p < 0:
            continue
        direction = float(rooting.direction_confidence[c])
        placement = placement_probability(float(margin[c]))
        evidence = {
            "distance": round(float(comp.raw_dist[p, c]), 8),
            "rank_fraction": round(float(comp.factors[p, c]), 4),
            "ranks": comp.ranks.get((min(p, c), max(p, c))),
            "kurtosis_vote": round(float(comp.votes["kurtosis"][p, c]), 4),
            "norm_vote": round(float(comp.votes["norm"][p, c]), 4),
            "direction_probability": round(direction, 4),
            "placement_margin": round(float(margin[c]), 4),
            "placement_probability": round(placement, 4),
        }
        relation = "lora" if comp.lowrank[p, c] else "finetune"
        edges.append(RecoveredEdge(comp.ids[p], comp.ids[c], relation,
                                   float(np.clip(direction * placement, 0.0, 1.0)), evidence))
    return edges


def _merge_edges(comp: Component, rooting: Rooting) -> list[RecoveredEdge]:
    edges = []
    for fit, (margin, ties) in zip(comp.merges, comp.merge_margins, strict=True):
        fit = _split_base(fit, comp, rooting)
        evidence = fit.to_evidence(comp.all_ids)
        evidence["explanation_margin"] = None if np.isinf(margin) else round(margin, 4)
        evidence["equally_good_readings"] = ties
        conf = merge_confidence(margin, ties)
        for p in fit.parents:
            edges.append(RecoveredEdge(comp.all_ids[p], comp.all_ids[fit.child], "merge",
                                       conf, evidence))
    return edges


def _split_base(fit: MergeFit, comp: Component, rooting: Rooting) -> MergeFit:
    """A weighted average whose weights sum to 1 reads the same with any parent as the
    base; task arithmetic and model stock mix in their base this way. The parent that
    is a tree ancestor of the other parents is that base, not a merged model."""
    if fit.base is not None or len(fit.parents) < 3:
        return fit
    tree_index = {m: i for i, m in enumerate(comp.ids)}
    nodes = {p: tree_index.get(comp.all_ids[p]) for p in fit.parents}
    bases = [p for p, t in nodes.items() if t is not None and any(
        u is not None and u != t and _is_ancestor(rooting.parents, t, u)
        for u in nodes.values())]
    if len(bases) != 1:
        return fit
    keep = [k for k, p in enumerate(fit.parents) if p != bases[0]]
    return replace(fit, base=bases[0], parents=[fit.parents[k] for k in keep],
                   coefficients=[fit.coefficients[k] for k in keep])


def _is_ancestor(parents: np.ndarray, a: int, b: int) -> bool:
    while b >= 0:
        b = int(parents[b])
        if b == a:
            return True
    return False


def _adapter_edges(models: Sequence[ModelInput], notes: list[str]) -> list[RecoveredEdge]:
    known = {m.model_id for m in models}
    edges = []
    for m in models:
        if not m.is_adapter:
            continue
        base = m.adapter_base if m.adapter_base in known else None
        rule = "adapter_config"
        if base is None:
            base = next((b for b in m.card_base_models if b in known), None)
            rule = "card (adapter_config base not in catalog)"
        if base is None:
            notes.append(f"adapter {m.model_id}: base {m.adapter_base!r} is not in the catalog")
            continue
        conf = 1.0 if rule == "adapter_config" else 0.7
        edges.append(RecoveredEdge(base, m.model_id, "adapter", conf, {"rule": rule}))
    return edges


def _trees(models: Sequence[ModelInput], edges: Sequence[RecoveredEdge]) -> list[list[str]]:
    graph = nx.Graph()
    graph.add_nodes_from(m.model_id for m in models)
    graph.add_edges_from((e.parent, e.child) for e in edges)
    return sorted((sorted(c) for c in nx.connected_components(graph)), key=lambda c: c[0])
