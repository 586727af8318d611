"""What a model says about itself: config.json, adapter config, card front matter.

Plus what its weights say: parameter and byte totals, dtypes, and an architecture
signature (a hash of sorted tensor names and shapes) that groups models which can be
compared tensor by tensor.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from lineage.weights.card import CardData, read_card
from lineage.weights.header import TensorInfo

MAX_CONFIG_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class ModelMetadata:
    kind: str
    config: dict = field(default_factory=dict)
    adapter_config: dict = field(default_factory=dict)
    card: CardData = field(default_factory=CardData)
    n_params: int = 0
    n_bytes: int = 0
    dtypes: tuple[str, ...] = ()
    arch_signature: str = ""

    @property
    def model_type(self) -> str | None:
        value = self.config.get("model_type") or self.config.get("_class_name")
        if self.kind == "peft-adapter":
            value = value or self.adapter_config.get("peft_type", "").lower() or None
        return value

    @property
    def architectures(self) -> tuple[str, ...]:
        return tuple(self.config.get("architectures") or ())

    @property
    def adapter_base(self) -> str | None:
        return self.adapter_config.get("base_model_name_or_path")

    @property
    def adapter_rank(self) -> int | None:
        rank = self.adapter_config.get("r")
        return rank if isinstance(rank, int) else None

    @property
    def base_models(self) -> tuple[str, ...]:
        """Declared parents: the card's base_model, else the adapter's base model."""
        if self.card.base_models:
            return self.card.base_models
        return (self.adapter_base,) if self.adapter_base else ()


def read_json(path: Path) -> dict:
    """A small JSON object file, or {} if absent or unreadable (metadata is optional)."""
    if not path.is_file() or path.stat().st_size > MAX_CONFIG_BYTES:
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return {}
    return doc if isinstance(doc, dict) else {}


def architecture_signature(infos: Iterable[TensorInfo]) -> str:
    """Stable hash of sorted (name, shape): equal for models comparable tensor by tensor."""
    items = sorted((t.name, list(t.shape)) for t in infos)
    return hashlib.sha256(json.dumps(items, separators=(",", ":")).encode()).hexdigest()[:16]


def read_metadata(kind: str, root: Path, infos: list[TensorInfo]) -> ModelMetadata:
    config = read_json(root / "config.json") or read_json(root / "model_index.json")
    return ModelMetadata(
        kind=kind,
        config=config,
        adapter_config=read_json(root / "adapter_config.json"),
        card=read_card(root),
        n_params=sum(t.numel for t in infos),
        n_bytes=sum(t.nbytes for t in infos),
        dtypes=tuple(sorted({t.dtype for t in infos})),
        arch_signature=architecture_signature(infos),
    )
