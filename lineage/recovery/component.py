"""One tree component, prepared for direction and arborescence: merges set aside
(linear ones from sketches; sparse TIES/DARE ones from the coordinate samples),
distances (rank-scaled by the rank sketches) and direction votes. Fingerprints without
that evidence (indexed before it existed) simply skip those checks."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lineage.recovery.direction import direction_votes
from lineage.recovery.distance import matrix_sq_dists, mother_distance
from lineage.recovery.features import GroupFeatures
from lineage.recovery.merges import MergeFit, detect_merges, drop_nested
from lineage.recovery.rank import candidate_pairs, has_rank_evidence, rank_factors
from lineage.recovery.sparse_merges import detect_sparse_merges, has_sample_evidence

LOW_RANK = 0.5  # rank / dimension below this: a low-rank (LoRA) difference
RANK_FLOOR = 0.02  # keeps a rank-scaled distance positive


@dataclass
class Component:
    features: GroupFeatures  # tree nodes only (merges removed)
    merges: list[MergeFit]  # indices into `all_ids`
    all_ids: list[str]  # every model of the component, merges included
    dist: np.ndarray  # [n, n] MoTHer distance, rank-scaled
    raw_dist: np.ndarray  # [n, n] MoTHer distance
    votes: dict[str, np.ndarray]  # signal -> [n, n] votes (direction.SIGNALS)
    lowrank: np.ndarray  # bool [n, n]: pair differs at low rank
    factors: np.ndarray  # [n, n] rank fractions (1 where not computed)
    ranks: dict[tuple[int, int], list[int | None]] = field(default_factory=dict)
    group: str = ""  # the architecture signature

    @property
    def ids(self) -> list[str]:
        return self.features.ids


def prepare_component(
    features: GroupFeatures, *, find_merges: bool = True,
    rank_neighbours: int = 4, group: str = "",
) -> Component:
    merges = detect_merges(features) if find_merges else []
    if find_merges and has_sample_evidence(features):  # TIES/DARE: exact on samples
        near = mother_distance(features, matrix_sq_dists(features))
        merges = drop_nested(merges + detect_sparse_merges(
            features, near, {f.child for f in merges}))
    merged = {f.child for f in merges}
    tree = features.take([i for i in range(features.n) if i not in merged])
    raw = mother_distance(tree, matrix_sq_dists(tree))
    factors = np.ones_like(raw)
    ranks: dict[tuple[int, int], list[int | None]] = {}
    if has_rank_evidence(tree) and tree.n > 1:
        pairs = candidate_pairs(raw, rank_neighbours)
        factors, ranks = rank_factors(tree, pairs)
    return Component(
        features=tree,
        merges=merges,
        all_ids=features.ids,
        dist=raw * np.maximum(factors, RANK_FLOOR),
        raw_dist=raw,
        votes=direction_votes(tree),
        lowrank=factors < LOW_RANK,
        factors=factors,
        ranks=ranks,
        group=group,
    )
