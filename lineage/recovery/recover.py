"""recover_graph: fingerprints in, Model Graph (a DAG with relations) out.

Pipeline, per architecture signature:
  exact duplicates (content hashes) -> re-upload leaves
  near-zero distance in another dtype -> cast leaves
  single linkage with a data-chosen cut -> tree components (tree count not given)
  per component: NNLS merge fits on sketches, and exact TIES/DARE checks on the
  coordinate samples -> merge edges; the rest -> distance (rank-scaled, from the rank
  sketches, for LoRA-style low-rank differences) + kurtosis, norm and centrality votes -> sign per
  relation class (cards, else structure) -> minimum spanning arborescence
PEFT adapters attach to the base their adapter config names.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import networkx as nx
import numpy as np

from lineage.recovery.arborescence import LAMBDA, second_best_margin
from lineage.recovery.cards import card_disagreements, undocumented_edges
from lineage.recovery.cluster import cluster_trees
from lineage.recovery.component import Component, prepare_component
from lineage.recovery.copies import cast_copies, exact_duplicates
from lineage.recovery.distance import matrix_sq_dists, relative_distance
from lineage.recovery.features import group_features, matrix_names
from lineage.recovery.graph import RecoveredEdge, RecoveryResult
from lineage.recovery.inputs import CardEdge, ModelInput
from lineage.recovery.orient import orient_all


@dataclass(frozen=True)
class RecoveryOptions:
    lam: float = LAMBDA  # MoTHer's direction penalty weight
    find_merges: bool = True
    rank_neighbours: int = 4  # sketch ranks for each node's k nearest


def recover_graph(
    models: Sequence[ModelInput],
    card_edges: Sequence[CardEdge] = (),
    *,
    options: RecoveryOptions | None = None,
) -> RecoveryResult:
    """Recover the Model Graph of `models` from their fingerprints.

    `card_edges` (what cards and adapter configs declare) calibrate the direction of
    kurtosis and are checked against the weights; they never place an edge. Only the
    fingerprints are read, never weights."""
    options = options or RecoveryOptions()
    named = Counter(b for m in models for b in m.card_base_models)
    orgs = Counter(m.org for m in models)
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
    parents, votes, direction = orient_all(comps, card_edges, options.lam)
    for comp, comp_parents, comp_votes in zip(comps, parents, votes, strict=True):
        edges += _tree_edges(comp, comp_parents, comp_votes) + _merge_edges(comp)
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
    keep, edges = cast_copies(members, rel, named, orgs)
    clustering = cluster_trees(rel[np.ix_(keep, keep)])
    comps: list[Component] = []
    for label in np.unique(clustering.labels):
        rows = [keep[i] for i in np.flatnonzero(clustering.labels == label)]
        comps.append(prepare_component(features.take(rows),
                                       find_merges=options.find_merges,
                                       rank_neighbours=options.rank_neighbours,
                                       group=sig))
    info = {
        "models": len(members),
        "trees": len(comps),
        "cut": {"threshold": clustering.threshold, "rule": clustering.rule},
    }
    return comps, edges, info


def _tree_edges(comp: Component, parents: np.ndarray, votes: np.ndarray) -> list:
    margin = second_best_margin(comp.dist, parents)
    edges = []
    for c, p in enumerate(parents):
        if p < 0:
            continue
        agree = (1.0 + votes[p, c]) / 2.0
        evidence = {
            "distance": round(float(comp.raw_dist[p, c]), 8),
            "rank_fraction": round(float(comp.factors[p, c]), 4),
            "ranks": comp.ranks.get((min(p, c), max(p, c))),
            "direction_vote": round(float(votes[p, c]), 4),
            "kurtosis_vote": round(float(comp.votes["kurtosis"][p, c]), 4),
            "norm_vote": round(float(comp.votes["norm"][p, c]), 4),
            "centrality_vote": round(float(comp.votes["centrality"][p, c]), 4),
            "placement_margin": round(float(margin[c]), 4),
        }
        conf = float(np.clip(agree * (0.5 + 0.5 * margin[c]), 0.0, 1.0))
        relation = "lora" if comp.lowrank[p, c] else "finetune"
        edges.append(RecoveredEdge(comp.ids[p], comp.ids[c], relation, conf, evidence))
    return edges


def _merge_edges(comp: Component) -> list[RecoveredEdge]:
    edges = []
    for fit in comp.merges:
        evidence = fit.to_evidence(comp.all_ids)
        conf = float(np.clip(1.0 - fit.ratio, 0.0, 1.0))
        for p in fit.parents:
            edges.append(RecoveredEdge(comp.all_ids[p], comp.all_ids[fit.child], "merge",
                                       conf, evidence))
    return edges


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
