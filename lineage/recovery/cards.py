"""Cards against weights: where a card's claim is contradicted, and which recovered
edges no card or adapter config declares. Same rules as the SQL macros
card_disagreements() and undocumented_edges() in catalog/sql/macros.sql."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from lineage.recovery.graph import RecoveredEdge
from lineage.recovery.inputs import CardEdge

# A card's relation word and the recovered relations that agree with it (the Hub calls
# a merged LoRA a fine-tune).
AGREES = {"finetune": {"finetune", "lora"}, "adapter": {"adapter", "lora"}}


def relation_agrees(card: str | None, recovered: str) -> bool:
    return card is None or recovered in AGREES.get(card, {card})


def card_disagreements(
    edges: Sequence[RecoveredEdge], cards: Iterable[CardEdge], known: set[str]
) -> list[dict]:
    """One row per card claim the weights contradict, about a parent in the catalog.

    kind 'parent': the claimed parent is not a recovered parent of the child;
    kind 'relation': it is, with a relation of another kind (a 'fine-tune' that is a
    byte-identical re-upload, say)."""
    claims = sorted(set(cards), key=lambda c: (c.child, c.parent))
    if not claims:  # no index over a million edges for nothing to check
        return []
    parents: dict[str, list[RecoveredEdge]] = defaultdict(list)
    for e in edges:
        parents[e.child].append(e)
    rows = []
    for card in claims:
        if card.parent not in known or card.child not in known:
            continue
        found = parents.get(card.child, [])
        match = [e for e in found if e.parent == card.parent]
        if match and relation_agrees(card.relation, match[0].relation):
            continue
        rows.append({
            "child": card.child,
            "card_parent": card.parent,
            "card_relation": card.relation,
            "kind": "relation" if match else "parent",
            "recovered_parents": sorted(e.parent for e in found),
            "recovered_relation": min((e.relation for e in found), default=None),
            "confidence": max((e.confidence for e in found), default=None),
        })
    return rows


def undocumented_edges(
    edges: Sequence[RecoveredEdge], cards: Iterable[CardEdge]
) -> list[RecoveredEdge]:
    declared = {(c.parent, c.child) for c in cards}
    return [e for e in edges if (e.parent, e.child) not in declared]
