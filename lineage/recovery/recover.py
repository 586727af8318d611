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

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from lineage.recovery.calibration import (
    CARD_CAP,
    merge_confidence,
    placed_edge_probability,
)
from lineage.recovery.card_placement import NO_CHECKS, CardChecks, StepCosines
from lineage.recovery.cards import card_disagreements, undocumented_edges
from lineage.recovery.cluster import cluster_trees
from lineage.recovery.component import Component, prepare_component
from lineage.recovery.copies import cast_copies, exact_duplicates
from lineage.recovery.direction import SIGNALS
from lineage.recovery.distance import (
    centred_cosines,
    matrix_sq_dists,
    null_cosine_std,
    relative_distance,
)
from lineage.recovery.features import group_features, matrix_names
from lineage.recovery.frozen import adapter_trained, frozen_vector_share
from lineage.recovery.graph import RecoveredEdge, RecoveryResult
from lineage.recovery.inputs import CardEdge, ModelInput, weights_only
from lineage.recovery.large_component import prepare_large_component, sparse_placement_margins
from lineage.recovery.merge_cards import CardVotes
from lineage.recovery.merges import MergeFit
from lineage.recovery.orient import ORIENT_RULE, gather, orient_all, with_base
from lineage.recovery.placement import margins_against, order_margins, runner_up_parents
from lineage.recovery.pool import map_tasks
from lineage.recovery.rooting import Rooting
from lineage.recovery.sparse_group import as_float64, split_sparse


@dataclass(frozen=True)
class RecoveryOptions:
    find_merges: bool = True
    rank_neighbours: int = 4  # sketch ranks for each node's k nearest
    dense_limit: int = 1000  # larger groups: candidate pairs (sparse_group.py), not n x n
    component_limit: int = 1000  # larger components: sparse tree (large_component.py)
    neighbours: int = 8  # candidate neighbours per model in the sparse group stage
    workers: int = 1  # processes that groups are spread over (pool.py)
    threads: int = 1  # BLAS / faiss threads per worker
    # False: recover from the weights alone (inputs.weights_only; no card edges), the
    # way held-out zoos are scored; cards still appear in the result's disagreements
    use_cards: bool = True


@dataclass
class GroupResult:
    """What one architecture group contributes: picklable, so groups run anywhere."""

    edges: list[RecoveredEdge]
    info: dict
    signs: dict  # component -> per-slot P(sign = +1)
    rule: str  # how direction was decided
    notes: list[str]
    card_checks: CardChecks = NO_CHECKS  # this group's checkable card claims
    card_claims: int = 0  # card claims about this group's tree nodes


def recover_graph(
    models: Sequence[ModelInput],
    card_edges: Sequence[CardEdge] = (),
    *,
    options: RecoveryOptions | None = None,
    map_groups: Callable[[Callable[..., GroupResult], list[tuple]], list[GroupResult]]
    | None = None,
) -> RecoveryResult:
    """Recover the Model Graph of `models` from their fingerprints.

    `card_edges` (what cards declare) are weighed against the weights: a direction
    signal, and between parents the weights cannot tell apart (card_placement.py).
    With options.use_cards False they, the models' own card claims and Hub creation
    times are left out (the weights alone), and only reported against the result.
    Architecture groups are independent tasks: `map_groups(fn, tasks)` returns
    [fn(*t) for t in tasks] in order (default: options.workers local processes; a Ray
    job passes its own)."""
    options = options or RecoveryOptions()
    models = sorted(models, key=lambda m: m.model_id)  # input order never matters
    documented = card_edges
    if not options.use_cards:
        models, card_edges = [weights_only(m) for m in models], ()
    named = Counter(b for m in models for b in m.card_base_models)
    orgs = Counter((m.arch_signature, m.org) for m in models)  # per architecture
    weighted = [m for m in models if not m.is_adapter and matrix_names(m)]
    reps, edges = exact_duplicates(weighted, orgs)
    groups: dict[str, list[ModelInput]] = defaultdict(list)
    for m in reps:
        groups[m.arch_signature].append(m)
    tasks = [(sig, members, options, named, orgs, tuple(card_edges))
             for sig, members in sorted(groups.items())]

    def run(batch: list[tuple]) -> list[GroupResult]:
        if map_groups is None:
            return map_tasks(recover_group, batch, options.workers, options.threads)
        return map_groups(recover_group, batch)

    results = _pool_card_checks(tasks, run(tasks), run)
    notes: list[str] = []
    direction = _merge_groups(results, [sig for sig, *_ in tasks], edges, notes)
    edges += _adapter_edges(models, notes)
    known = {m.model_id for m in models}
    return RecoveryResult(
        edges=edges,
        trees=_trees(models, edges),
        card_disagreements=card_disagreements(edges, documented, known),
        undocumented=undocumented_edges(edges, documented),
        direction=direction,
        notes=notes,
    )


@dataclass
class PartResult:
    """One part's graph (recover_parts), with how long loading and recovery took."""

    ids: list[str]
    result: RecoveryResult
    load_seconds: float
    recover_seconds: float


def recover_parts(
    parts: Sequence[Callable[[], Sequence[ModelInput]]],
    card_edges: Sequence[CardEdge] = (),
    *,
    options: RecoveryOptions | None = None,
) -> tuple[RecoveryResult, list[PartResult]]:
    """recover_graph for more fingerprints than fit in memory at once. Each part is a
    picklable zero-argument callable returning some models; it is called only in the
    worker that recovers it (options.workers processes), so at most `workers` parts are
    in memory together. A part must hold whole architecture groups with their adapters:
    exact duplicates, organisation sizes and card counts are read within a part."""
    options = options or RecoveryOptions()
    inner = replace(options, workers=1)
    done = map_tasks(_recover_part, [(p, inner, tuple(card_edges)) for p in parts],
                     options.workers, options.threads)
    edges: list[RecoveredEdge] = []
    notes: list[str] = []
    direction: dict = {"rule": ORIENT_RULE, "signs": {}, "groups": {}}
    for part in done:
        edges += part.result.edges
        notes += part.result.notes
        direction["signs"].update(part.result.direction["signs"])
        direction["groups"].update(part.result.direction["groups"])
    ids = [m for part in done for m in part.ids]
    result = RecoveryResult(
        edges=edges,
        trees=connected_ids(ids, edges),
        card_disagreements=card_disagreements(edges, card_edges, set(ids)),
        undocumented=undocumented_edges(edges, card_edges),
        direction=direction,
        notes=notes,
    )
    for part in done:  # the edges live in `result`; the parts keep their timings
        part.result = replace(part.result, edges=[], undocumented=[], trees=[])
    return result, done


def _recover_part(part: Callable[[], Sequence[ModelInput]], options: RecoveryOptions,
                  card_edges: Sequence[CardEdge]) -> PartResult:
    started = time.perf_counter()
    models = part()
    loaded = time.perf_counter()
    result = recover_graph(models, card_edges, options=options)
    return PartResult([m.model_id for m in models], result, loaded - started,
                      time.perf_counter() - loaded)


def recover_group(sig: str, members: Sequence[ModelInput], options: RecoveryOptions,
                  named: Counter, orgs: Counter, card_edges: Sequence[CardEdge] = (),
                  elsewhere: CardChecks = NO_CHECKS) -> GroupResult:
    """Casts, trees, merges and orientation of one architecture group (groups are
    independent: the direction prior pools over one group's trees only; `elsewhere`,
    the checkable card claims of the other groups, joins this group's in the card
    reliability)."""
    comps, edges, info, notes = _split_group(sig, members, options, named, orgs)
    rootings, direction = orient_all(comps, card_edges, elsewhere)
    if card_edges and _rival_readings(comps):
        # The weights left a dependency with readings as plausible as their choice:
        # cards decide among them (merge_cards.py), weighed by the reliability this
        # group's trees gave them, and the group is split again with those choices.
        votes = CardVotes(frozenset((c.parent, c.child) for c in card_edges),
                          direction["card_reliability"])
        comps, edges, info, notes = _split_group(sig, members, options, named, orgs, votes)
        rootings, direction = orient_all(comps, card_edges, elsewhere)
    claims = {(c.parent, c.child) for c in card_edges}
    claimed_children = {child for _, child in claims}
    for comp, rooting in zip(comps, rootings, strict=True):
        edges += (_tree_edges(comp, rooting, claims, claimed_children)
                  + _merge_edges(comp, rooting))
    checks = direction["card_checks"]
    if direction["card_claims"]:
        info["cards"] = {"claims": direction["card_claims"],
                         "checked_honest": checks.honest, "checked_lies": checks.lies,
                         "other_groups_honest": elsewhere.honest,
                         "other_groups_lies": elsewhere.lies,
                         "reliability": round(direction["card_reliability"], 4),
                         "step_cosines": _step_cosines(direction["step_cosines"])}
    return GroupResult(edges, info, direction["signs"], direction["rule"], notes,
                       checks, direction["card_claims"])


def _step_cosines(steps: StepCosines | None) -> dict | None:
    if steps is None:
        return None
    return {name: None if value is None else round(value, 4) for name, value in (
        ("chain_sd", steps.chain_sd), ("sibling_mean", steps.sibling_mean),
        ("sibling_sd", steps.sibling_sd))}


def _pool_card_checks(tasks: list[tuple], results: list[GroupResult],
                      run: Callable[[list[tuple]], list[GroupResult]]
                      ) -> list[GroupResult]:
    """Each group with card claims recovered again with the other groups' checkable
    claims pooled into its card reliability (card_placement.CardChecks). A
    group's own checks come from the weights' tree before any card moves it, so they
    are the same in the second run, and every group ends with the catalog's rho. A
    group above the dense limit is not run twice (that would double the cost of the
    largest groups) and keeps its own rho: its many claims are a sample of their own."""
    total = sum((r.card_checks for r in results), NO_CHECKS)
    again = [i for i, r in enumerate(results)
             if r.card_claims and total - r.card_checks != NO_CHECKS
             and _dense(*tasks[i])]
    if not again:
        return results
    redone = run([(*tasks[i], total - results[i].card_checks) for i in again])
    results = list(results)
    for i, result in zip(again, redone, strict=True):
        results[i] = result
    return results


def _dense(sig: str, members: Sequence[ModelInput], options: RecoveryOptions,
           *_: object) -> bool:
    """A recover_group task compared pair by pair (not by candidate pairs)."""
    return len(members) <= options.dense_limit


def _merge_groups(results: Sequence[GroupResult], sigs: Sequence[str],
                  edges: list[RecoveredEdge], notes: list[str]) -> dict:
    """Appends every group's edges and notes; returns the direction summary."""
    direction: dict = {"rule": ORIENT_RULE, "signs": {}, "groups": {}}
    for sig, result in zip(sigs, results, strict=True):
        edges += result.edges
        notes += result.notes
        direction["rule"] = result.rule
        direction["signs"].update(result.signs)
        direction["groups"][sig] = result.info
    return direction


def _rival_readings(comps: Sequence[Component]) -> bool:
    """Some merge was chosen over a reading as plausible (a finite margin)."""
    return any(np.isfinite(m) for comp in comps for m, _ in comp.merge_margins)


def _split_group(sig, members, options, named, orgs, cards=None
                 ) -> tuple[list, list, dict, list]:
    """Casts set aside, then tree components of one architecture group: dense pairs up
    to options.dense_limit models, candidate pairs above it (same rules). `cards`:
    CardVotes for merge readings the weights leave open."""
    if not _dense(sig, members, options):
        return _split_sparse(sig, members, options, named, orgs, cards)
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
        comps.append(_release_sketches(prepare_component(
            features.take(rows), find=options.find_merges,
            rank_neighbours=options.rank_neighbours, group=sig,
            dtypes=[members[i].dtype for i in rows], cards=cards)))
    info = {
        "models": len(members),
        "trees": len(comps),
        "cut": {"cosine_threshold": round(clustering.threshold, 6),
                "null_sigma": round(clustering.sigma, 6), "rule": clustering.rule},
    }
    return comps, edges, info, []


def _split_sparse(sig, members, options, named, orgs, cards=None
                  ) -> tuple[list, list, dict, list]:
    features = group_features(members, sketch_dtype=np.float32)
    split = split_sparse(members, features, named, orgs, neighbours=options.neighbours,
                         threads=options.threads)
    comps: list[Component] = []
    notes = []
    for rows, pairs in zip(split.components, split.pairs, strict=True):
        part = as_float64(features.take(rows))
        if rows.size > options.component_limit:
            comp, note = prepare_large_component(
                part, pairs, rank_neighbours=options.rank_neighbours, group=sig)
            comps.append(_release_sketches(comp))
            notes.append(note)
            continue
        comps.append(_release_sketches(prepare_component(
            part, find=options.find_merges, rank_neighbours=options.rank_neighbours,
            group=sig, dtypes=[members[i].dtype for i in rows], cards=cards)))
    return comps, split.edges, split.info, notes


def _release_sketches(comp: Component) -> Component:
    """Orientation and edges read a prepared component's pair arrays and ids, never its
    sketches: dropping them keeps a group's thousands of components from holding a
    float64 copy of every sketch until the last one is oriented."""
    comp.features = replace(comp.features, sketches=[], rank_sketches=[], samples=[])
    return comp


def _tree_edges(comp: Component, rooting: Rooting, claims: set[tuple[str, str]],
                claimed_children: set[str]) -> list[RecoveredEdge]:
    """The placed tree's edges with their evidence; `claims`: the (parent, child) pairs
    cards declare, which tell a weights-placed edge a card confirms, and
    `claimed_children` their children, whether the tree's models have cards at all
    (calibration.placed_edge_probability)."""
    parents = rooting.parents
    if sparse.issparse(comp.dist):
        margin = sparse_placement_margins(comp.dist, parents)
        runner_up: list[int | None] = [None] * len(parents)
    else:
        # the tiered key's own distances where ranks tier it (the rank_sum decides
        # low-rank edges), the spanning tree's key otherwise
        dist = comp.raw_dist if comp.rank_sum is not None else comp.dist
        runner_up = runner_up_parents(dist, parents, comp.rank_sum)
        margin = np.minimum(margins_against(dist, parents, runner_up, comp.rank_sum),
                            order_margins(dist, parents, comp.rank_sum))
    cards_present = not claimed_children.isdisjoint(comp.ids)
    cs = np.flatnonzero(parents >= 0)
    ps = parents[cs]
    at = {name: gather(a, ps, cs).tolist() for name, a in (
        ("distance", comp.raw_dist), ("rank_fraction", comp.factors),
        ("lowrank", comp.lowrank), *((k, comp.votes[k]) for k in SIGNALS
                                    if k in comp.votes))}
    edges = []
    for e, (c, p) in enumerate(zip(cs.tolist(), ps.tolist(), strict=True)):
        direction = float(rooting.direction_confidence[c])
        card = comp.card_placed.get((p, c), comp.card_placed.get((c, p)))
        by_card = card is not None
        confirmed = (comp.ids[p], comp.ids[c]) in claims
        low_rank = bool(at["lowrank"][e])
        placement = (min(card, CARD_CAP) if by_card
                     else placed_edge_probability(float(margin[c]), confirmed, low_rank,
                                                  cards_present))
        evidence = {
            "distance": round(float(at["distance"][e]), 8),
            "rank_fraction": round(float(at["rank_fraction"][e]), 4),
            "ranks": comp.ranks.get((min(p, c), max(p, c))),
            **{f"{k}_vote": round(float(at[k][e]), 4) if k in at else None
               for k in SIGNALS},
            "direction_probability": round(direction, 4),
            "placement_margin": round(float(margin[c]), 4),
            "runner_up": None if runner_up[c] is None else comp.ids[runner_up[c]],
            "placement_probability": round(placement, 4),
            "placed_by": "card" if by_card else "weights",
            "card_confirmed": confirmed,
            "low_rank": low_rank,
        }
        if by_card:
            evidence["card_posterior"] = round(card, 4)
        frozen = frozen_vector_share(comp.features, p, c)
        evidence["frozen_vectors"] = None if frozen is None else round(frozen, 4)
        lora = adapter_trained(comp.features, p, c, low_rank)
        relation = "lora" if lora else "finetune"
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
        conf = (merge_confidence(margin, ties) if fit.card_posterior is None
                else fit.card_posterior)
        for p in fit.parents:
            edges.append(RecoveredEdge(comp.all_ids[p], comp.all_ids[fit.child], "merge",
                                       conf, evidence))
    return edges


def _split_base(fit: MergeFit, comp: Component, rooting: Rooting) -> MergeFit:
    """What orient.average_base could not settle from the undirected tree (parents
    that are merges themselves, or two parents in one branch), read from the rooted
    tree: the parent that is an ancestor of all the other parents is the base. A parent
    that is itself a merge stands where its own inputs stand: task arithmetic over two
    merges of the base's fine-tunes, B + l (M1 - B) + l (M2 - B), is the weighted
    average of B, M1 and M2 with weights 1 - 2l, l, l, and B is the ancestor of the
    merges' inputs, not a third model averaged in (held-out 1019/4, 1020/2: the base
    was reported as a merge parent at 0.98)."""
    if fit.base is not None or len(fit.parents) < 3:
        return fit
    tree_index = {m: i for i, m in enumerate(comp.ids)}
    made = {f.child: f for f in comp.merges}
    nodes = {p: _tree_inputs(p, comp.all_ids, tree_index, made) for p in fit.parents}
    bases = [p for p in fit.parents if comp.all_ids[p] in tree_index
             and _below(rooting.parents, tree_index[comp.all_ids[p]],
                        [us for q, us in nodes.items() if q != p])]
    if len(bases) != 1:
        return fit
    return with_base(fit, bases[0])


def _below(parents: np.ndarray, t: int, others: list[set[int]]) -> bool:
    """Every other parent stands below tree node t: each has tree inputs, and all of
    them other than t itself descend from t."""
    return all(us and all(u == t or _is_ancestor(parents, t, u) for u in us)
               and us != {t} for us in others)


def _tree_inputs(model: int, all_ids: list[str], tree_index: dict[str, int],
                 made: dict[int, MergeFit], seen: frozenset[int] = frozenset()
                 ) -> set[int]:
    """The tree nodes a model stands for: itself when it is one, else (a merge) the
    tree nodes its inputs stand for, base included."""
    if all_ids[model] in tree_index:
        return {tree_index[all_ids[model]]}
    fit = made.get(model)
    if fit is None or model in seen:
        return set()
    return set().union(*(_tree_inputs(p, all_ids, tree_index, made, seen | {model})
                         for p in fit.members - {model}))


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
    return connected_ids([m.model_id for m in models], edges)


def connected_ids(ids: Sequence[str], edges: Sequence[RecoveredEdge]) -> list[list[str]]:
    """Connected components of the models under the edges, each sorted, by first id
    (scipy on integer indices: a million models in seconds)."""
    names = sorted(set(ids) | {e.parent for e in edges} | {e.child for e in edges})
    index = {m: i for i, m in enumerate(names)}
    rows = np.array([index[e.parent] for e in edges], dtype=np.int64)
    cols = np.array([index[e.child] for e in edges], dtype=np.int64)
    n = len(names)
    graph = sparse.coo_matrix((np.ones(rows.size), (rows, cols)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    trees: dict[int, list[str]] = defaultdict(list)
    for name, label in zip(names, labels.tolist(), strict=True):
        trees[label].append(name)  # names are sorted: every tree is too
    return sorted(trees.values(), key=lambda c: c[0])
