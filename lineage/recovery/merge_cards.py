"""Cards decide between readings of a linear dependency the weights cannot tell apart.

Task arithmetic M = B + l (F1 - B) + ... + l (Fk - B) also reads B = M + l' (F1 - M) + ...
with l' = l / (k l - 1), inside (0, 1] whenever 1 / (k - 1) <= l <= 1: both readings pass
the range test, and the spanning cost that decides next leans toward the mirror whenever
k l < 2 (the merge sits nearer each fine-tune than the base does:
|Fi - M|^2 = |ti|^2 (1 - 2 l + k l^2) for independent task vectors of one size), unless
the base's other children pull the other way. Then the weights give a probability near
1/2 (calibration.merge_confidence) and the cards of the dependency's members decide:

  a reading orders its members (the base before its parents, both before the child);
  a card of c naming a as its base agrees with a reading that puts a before c and
  contradicts one that puts c before a (pairs a reading leaves unordered say nothing).
  With cards honest with probability rho (card_placement.CardChecks.reliability, read
  from the claims the weights can check), a reading's likelihood is
  (rho / (1 - rho)) ^ (agreeing - contradicting) up to a common factor, times the
  weights' probability: P_w for the reading they chose, (1 - P_w) / (r - 1) for each
  of its r - 1 rivals. The likeliest reading is kept, its posterior its confidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lineage.recovery.calibration import UNIQUE_MERGE
from lineage.recovery.merges import MergeFit


@dataclass(frozen=True)
class CardVotes:
    """The group's card claims (parent id, child id) and their reliability rho."""

    claims: frozenset[tuple[str, str]]
    rho: float

    def support(self, fit: MergeFit, ids: Sequence[str]) -> int:
        """Claims among the fit's members that agree with its order, minus those that
        contradict it."""
        before = _order(fit)
        members = {ids[k]: k for k in fit.members}
        total = 0
        for parent, child in self.claims:
            a, c = members.get(parent), members.get(child)
            if a is None or c is None:
                continue
            total += ((a, c) in before) - ((c, a) in before)
        return total

    def choose(self, readings: list[MergeFit], p_w: float, ids: Sequence[str]
               ) -> tuple[int, float] | None:
        """(index of the likeliest reading, its posterior), the weights' choice first in
        `readings`; None when the cards say nothing about them."""
        support = np.array([self.support(r, ids) for r in readings], dtype=np.float64)
        if len(readings) < 2 or not np.any(support != support[0]) or not 0.5 < self.rho < 1:
            return None
        prior = np.full(len(readings), (1.0 - p_w) / (len(readings) - 1))
        prior[0] = p_w
        log_odds = np.log(np.maximum(prior, 1e-300)) + support * np.log(self.rho / (1 - self.rho))
        post = np.exp(log_odds - log_odds.max())
        post /= post.sum()
        best = int(np.argmax(post))
        # Claims are not quite independent (one uploader writes several cards): the
        # posterior is capped where an unrivalled reading's confidence is.
        return best, min(float(post[best]), UNIQUE_MERGE)


def _order(fit: MergeFit) -> set[tuple[int, int]]:
    """(earlier, later) pairs a reading implies: base before parents, both before child."""
    pairs = {(p, fit.child) for p in fit.parents}
    if fit.base is not None:
        pairs |= {(fit.base, fit.child)} | {(fit.base, p) for p in fit.parents}
    return pairs
