"""The recovered Model Graph: edges with a relation, a confidence and their evidence."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

RELATIONS = ("finetune", "lora", "adapter", "merge", "quantized", "reupload")


@dataclass(frozen=True)
class RecoveredEdge:
    parent: str
    child: str
    relation: str  # one of RELATIONS
    confidence: float  # in [0, 1]
    evidence: dict = field(default_factory=dict)  # JSON-ready: what supports the edge

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RecoveryResult:
    edges: list[RecoveredEdge]
    trees: list[list[str]]  # model ids per recovered component (copies/adapters included)
    card_disagreements: list[dict]  # a card's claim the weights contradict
    undocumented: list[RecoveredEdge]  # recovered edges no card or config declares
    direction: dict  # per architecture group: how the kurtosis sign was decided
    notes: list[str] = field(default_factory=list)

    def parents_of(self, child: str) -> list[str]:
        return sorted(e.parent for e in self.edges if e.child == child)

    def to_dict(self) -> dict:
        return {
            "edges": [e.to_dict() for e in self.edges],
            "trees": self.trees,
            "card_disagreements": self.card_disagreements,
            "undocumented": [e.to_dict() for e in self.undocumented],
            "direction": self.direction,
            "notes": self.notes,
        }
