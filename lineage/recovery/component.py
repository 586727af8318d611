"""One tree component, prepared for placement and orientation: merges set aside (exact
linear ones from sketches; sparse TIES/DARE ones from the coordinate samples; one
explanation per dependency), distances (rank-scaled by the rank sketches) and direction
votes. Fingerprints without that evidence (indexed before it existed) skip those
checks."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lineage.recovery.dependencies import choose_explanations, implausibility
from lineage.recovery.direction import direction_votes
from lineage.recovery.distance import matrix_sq_dists, placement_distance
from lineage.recovery.features import GroupFeatures
from lineage.recovery.layer_merges import layerwise_merges
from lineage.recovery.merge_cards import CardVotes
from lineage.recovery.merges import MergeFit, Rounding, candidate_merges, copies_to_rounding
from lineage.recovery.placement import (
    ALL_PAIRS_LIMIT,
    all_pairs,
    balanced_gram,
    rank_sums,
    tiered_key,
)
from lineage.recovery.rank import candidate_pairs, has_rank_evidence, rank_factors
from lineage.recovery.sparse_merges import detect_sparse_merges, has_sample_evidence

# A full fine-tune changes a matrix at full rank (its update has no reason to miss a
# direction); a LoRA of rank r < min(m, n) cannot reach it. So "low rank" is rank-
# deficient in the typical changed matrix: median rank fraction below 1.
FULL_RANK = 1.0
RANK_FLOOR = 0.02  # keeps a rank-scaled distance positive


@dataclass
class Component:
    features: GroupFeatures  # tree nodes only (merges removed)
    merges: list[MergeFit]  # indices into `all_ids`
    merge_margins: list[tuple[float, int]]  # per merge: (margin, readings that tie)
    all_ids: list[str]  # every model of the component, merges included
    dist: np.ndarray  # [n, n] the spanning tree's key (placement.tiered_key, dense;
    # rank-scaled distance in large components)
    raw_dist: np.ndarray  # [n, n] placement distance (distance.placement_distance)
    votes: dict[str, np.ndarray]  # signal -> [n, n] votes (direction.SIGNALS)
    lowrank: np.ndarray  # bool [n, n]: pair differs at low rank
    factors: np.ndarray  # [n, n] rank fractions (1 where not computed)
    ranks: dict[tuple[int, int], dict[str, int | None]] = field(default_factory=dict)
    group: str = ""  # the architecture signature
    rank_sum: np.ndarray | None = None  # [n, n] total rank of low-rank pairs (dense)
    gram: np.ndarray | None = None  # [n, n] placement.balanced_gram (dense)
    # (parent, child) -> P(right) for the edges a card placed (card_placement.py)
    card_placed: dict[tuple[int, int], float] = field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        return self.features.ids


def find_merges(features: GroupFeatures, dtypes: list[str | None],
                near: np.ndarray | None = None, cost: np.ndarray | None = None,
                cards: CardVotes | None = None) -> list[tuple[MergeFit, float, int]]:
    """Every merge of the component, one explanation per dependency. `near`: the
    component's placement distances when already computed; `cost`: the spanning-tree
    key the explanations are compared by (placement.tiered_key; `near` by default)."""
    if near is None:
        near = placement_distance(features, matrix_sq_dists(features))
    rounding = Rounding.of(features, dtypes)
    fits = candidate_merges(features, dtypes, rounding)
    # A linear fit whose coefficients no tool uses is usually one reading of another
    # model's dependency (a merge of merges: M3 = B + l (M1 - B) + l (M2 - B) also
    # reads M2 from M3, M1 and B with weights 1/l and -1), and that reading loses to
    # the plausible one; the model may still be a per-matrix merge (model stock) of
    # its own parents, so only plausible linear fits spare a model the per-matrix search.
    plausible = [f for f in fits if implausibility(f) == 0.0]
    explained = {f.child for f in plausible}
    inputs = {f.child: sorted(f.members - {f.child}) for f in plausible}
    layerwise = layerwise_merges(features, rounding, near, explained, inputs)
    fits += layerwise
    if has_sample_evidence(features):  # TIES/DARE: exact on the coordinate samples
        # An implausible linear reading does not spare a model the sparse search
        # either: a TIES merge M1 averaged with M2 into M3 is also "M1 = 2 M3 - M2",
        # and that mirror kept M1 from being read as the TIES merge it is (held-out
        # 1011/3: M1 then became a fine-tune of one of its parents).
        fits += not_linear(detect_sparse_merges(
            features, explained | {f.child for f in layerwise}), fits)
    if fits:  # the Gram over every sketch again: only where a merge was claimed
        copies = copies_to_rounding(features, rounding)
        fits = [f for f in fits if f.child not in copies]
    return choose_explanations(fits, near if cost is None else cost, features.ids, cards)


def not_linear(sparse_fits: list[MergeFit], exact_fits: list[MergeFit]) -> list[MergeFit]:
    """The sparse readings whose models hold no exact dependency `exact_fits` found
    (linear, or per matrix). One that does is that relation, not a TIES/DARE merge:
    those fit sketches only partly,
    while every coordinate of a linear relation reads as "all parents survived", which
    DARE's acceptance test passes (held-out 1002/0: a root read as a sparse merge of its
    two merges over their task-arithmetic merge; 1013/8: a LoRA child read as a sparse
    merge over the SLERP of it and its sibling, shares 0.999 from the sibling and 0.001
    from the root)."""
    held = {f.members for f in exact_fits}
    return [f for f in sparse_fits if not any(d <= f.members for d in held)]


def component_ranks(features: GroupFeatures, dist: np.ndarray, rank_neighbours: int
                    ) -> tuple[np.ndarray, dict[tuple[int, int], dict[str, int | None]]]:
    """(rank fractions [n, n], per-matrix ranks by pair): every pair of a component up
    to placement.ALL_PAIRS_LIMIT models, each model's nearest above it."""
    if not (has_rank_evidence(features) and features.n > 1):
        return np.ones_like(dist), {}
    pairs = (list(all_pairs(features.n)) if features.n <= ALL_PAIRS_LIMIT
             else candidate_pairs(dist, rank_neighbours))
    return rank_factors(features, pairs)


def prepare_component(
    features: GroupFeatures, *, find: bool = True,
    rank_neighbours: int = 4, group: str = "", dtypes: list[str | None] | None = None,
    cards: CardVotes | None = None,
) -> Component:
    dtypes = dtypes if dtypes is not None else [None] * features.n
    sq = matrix_sq_dists(features)
    near = placement_distance(features, sq)
    factors, ranks = component_ranks(features, near, rank_neighbours)
    lowrank = factors < FULL_RANK
    rank_sum = rank_sums(features.n, ranks, lowrank)
    # Which member of a dependency is the merge is judged by the tree the rest leaves,
    # ranks included: a LoRA base taken out splits its LoRA family.
    chosen = (find_merges(features, dtypes, near, tiered_key(near, rank_sum), cards)
              if find else [])
    merged = {f.child for f, _, _ in chosen}
    if merged:  # the tree's distances without the merges (recentred sketches)
        keep = [i for i in range(features.n) if i not in merged]
        tree = features.take(keep)
        sq = matrix_sq_dists(tree)
        raw = placement_distance(tree, sq)
        factors, lowrank, rank_sum = (a[np.ix_(keep, keep)] for a in (factors, lowrank, rank_sum))
        ranks = _reindex(ranks, keep)
    else:  # nothing taken out: the same distances
        tree, raw = features, near
    return Component(
        features=tree,
        merges=[f for f, _, _ in chosen],
        merge_margins=[(m, t) for _, m, t in chosen],
        all_ids=features.ids,
        dist=tiered_key(raw, rank_sum),
        raw_dist=raw,
        votes=direction_votes(tree, sq),
        lowrank=lowrank,
        factors=factors,
        ranks=ranks,
        group=group,
        rank_sum=rank_sum,
        gram=balanced_gram(tree),
    )


def _reindex(ranks: dict[tuple[int, int], dict], keep: list[int]) -> dict:
    new = {old: k for k, old in enumerate(keep)}
    return {(new[i], new[j]): r for (i, j), r in ranks.items() if i in new and j in new}
