"""A card that names no base in the catalog is evidence for the root.

A tree's root has no parent among the models recovered, so an honest card of it names
none (it may name a base outside the catalog); a fine-tune's honest card names its
parent. Per architecture group, with N tree nodes in T trees, a share pi of the
non-root nodes' cards names a model of the group, and a root's card does so only by a
lie: pi_root = (1 - rho) pi, rho the card reliability
(card_placement.CardChecks.reliability). The count of nodes whose card names one,
K = pi ((N - T) + T (1 - rho)), gives pi. A node's own card then weighs "it is the
root" against "it is not" by
  (1 - pi_root) / (1 - pi) when it names nothing in the group, and
  pi_root / pi = 1 - rho when it does,
which rooting.root_tree adds to the growth prior. Where cards mostly name their base
(pi near 1) a silent card marks the root strongly; where most cards are silent (as on
much of the Hub) it says little. With rho at 1/2 or below (cards no better than
chance) nothing is added.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lineage.recovery.component import Component
from lineage.recovery.inputs import CardEdge


def root_card_evidence(comps: Sequence[Component], cards: Sequence[CardEdge], rho: float
                       ) -> list[np.ndarray | None]:
    """Per component, [n] log-likelihood ratios (root against not) of each tree node's
    card; None everywhere when the cards are no better than chance."""
    group = {m for comp in comps for m in comp.all_ids}
    names = {c.child for c in cards if c.parent in group and c.parent != c.child}
    nodes = sum(len(comp.ids) for comp in comps)
    trees = len(comps)
    if rho <= 0.5 or nodes <= trees:
        return [None] * len(comps)
    naming = sum(m in names for comp in comps for m in comp.ids)
    # Jeffreys' half a pseudo-count each way: a group where every card or none names a
    # base still leaves pi inside (0, 1)
    pi = (naming + 0.5) / ((nodes - trees) + trees * (1.0 - rho) + 1.0)
    pi = min(max(pi, 1e-6), 1.0 - 1e-6)
    pi_root = (1.0 - rho) * pi
    silent = np.log((1.0 - pi_root) / (1.0 - pi))
    named = np.log(1.0 - rho)
    return [np.array([named if m in names else silent for m in comp.ids]) for comp in comps]
