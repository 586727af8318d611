"""Which way an edge points: per-matrix kurtosis votes, and the sign they follow.

MoTHer sums excess kurtosis over square matrices and is told the regime (falls during
fine-tuning, rises in long pre-training). We are not told: each pair gets a vote
V[i, j] in [-1, 1], the mean over the square matrices the two models do not share
byte for byte of sign(kurt_j - kurt_i): +1 when every changed matrix is more kurtotic
in j. The sign s (+1: kurtosis rises parent -> child) comes from documented edges when
there are enough that agree (cards lie, so it is a vote), else from the structure:
in a branching tree only the true sign lets every edge agree, so the sign whose
arborescence is cheaper wins (arborescence.choose_sign).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from lineage.recovery.features import GroupFeatures

MIN_CARD_EDGES = 3  # fewer documented edges than this say nothing about the sign
MIN_AGREEMENT = 0.7  # fraction of documented edges that must agree with the majority


def kurtosis_votes(features: GroupFeatures) -> np.ndarray:
    """[n, n] antisymmetric votes; V[i, j] > 0: kurtosis rises from i to j."""
    mask = features.square
    k = features.kurtosis[:, mask]  # [n, Q]
    h = features.hashes[:, mask]
    rises = np.sign(k[None, :, :] - k[:, None, :])  # [n, n, Q]: sign(k_j - k_i)
    changed = h[:, None, :] != h[None, :, :]
    count = changed.sum(axis=2)
    votes = (rises * changed).sum(axis=2) / np.maximum(count, 1)
    return votes


@dataclass(frozen=True)
class SignDecision:
    sign: int  # +1 kurtosis rises parent -> child, -1 falls
    rule: str  # "cards" | "structure" | "default"
    support: int  # documented edges (cards) or components (structure) behind it
    agreement: float  # fraction of that support agreeing with `sign`

    def to_dict(self) -> dict:
        return {"sign": self.sign, "rule": self.rule, "support": self.support,
                "agreement": round(self.agreement, 4)}


def sign_from_cards(card_votes: Iterable[float]) -> SignDecision | None:
    """A robust majority of documented edges' votes, or None if they say too little."""
    signs = np.sign([v for v in card_votes if v != 0.0])
    if signs.size < MIN_CARD_EDGES:
        return None
    sign = 1 if signs.sum() >= 0 else -1
    agreement = float((signs == sign).mean())
    if agreement < MIN_AGREEMENT:
        return None
    return SignDecision(sign, "cards", int(signs.size), agreement)
