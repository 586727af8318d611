"""Kinship-guided choice of what to merge next (Hu et al. 2024, "Exploring Model Kinship
for Merging Large Language Models", arXiv 2410.12613). Pure: scores and a kinship
function in, proposals out.

One generation of top-k greedy merging with exploration:
- rank models by task score and take the top k;
- if the mean pairwise kinship of the top k is at least ``threshold``, the top models have
  converged onto one another (kinship saturation: merging them again gains little), stop;
- else propose every not-yet-merged pair of the top k (best pairs first), plus one
  exploration merge: the best model with its least-related candidate, which brings in
  directions the top models do not share.
Kinship is the cosine similarity of delta weights against the common base.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import combinations

Kinship = Callable[[str, str], float]


@dataclass(frozen=True)
class Proposal:
    a: str
    b: str
    reason: str
    kinship: float


@dataclass(frozen=True)
class Generation:
    top: list[str]
    mean_kinship: float | None  # None with fewer than two top models
    saturated: bool
    proposals: list[Proposal] = field(default_factory=list)


def ranked(scores: Mapping[str, float]) -> list[str]:
    """Best first; ties broken by id so a run is reproducible."""
    return sorted(scores, key=lambda m: (-scores[m], m))


def mean_pairwise(ids: list[str], kinship: Kinship) -> float | None:
    pairs = list(combinations(ids, 2))
    return sum(kinship(a, b) for a, b in pairs) / len(pairs) if pairs else None


def propose(
    scores: Mapping[str, float],
    kinship: Kinship,
    *,
    k: int = 2,
    threshold: float = 0.95,
    done: set[frozenset[str]] | None = None,
    explore: bool = True,
) -> Generation:
    """The merges of one generation; ``done`` holds pairs merged in earlier ones."""
    done = done or set()
    order = ranked(scores)
    top = order[:k]
    mean = mean_pairwise(top, kinship)
    if mean is not None and mean >= threshold:
        return Generation(top, mean, True)
    proposals: list[Proposal] = []
    taken = set(done)
    for a, b in combinations(top, 2):  # in rank order: the best pairs first
        if frozenset((a, b)) in taken:
            continue
        kin = kinship(a, b)
        proposals.append(Proposal(a, b, f"top-{k} pair (scores {scores[a]:.3f}, "
                                        f"{scores[b]:.3f})", kin))
        taken.add(frozenset((a, b)))
    if explore and order:
        best = order[0]
        others = [m for m in order[1:] if frozenset((best, m)) not in taken]
        if others:
            far = min(others, key=lambda m: (kinship(best, m), m))
            kin = kinship(best, far)
            proposals.append(Proposal(best, far, f"exploration: least related to the best "
                                                 f"model (kinship {kin:.3f})", kin))
    return Generation(top, mean, False, proposals)
