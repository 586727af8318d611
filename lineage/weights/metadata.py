"""What a model says about itself: config.json, adapter config, card front matter.

Plus what its weights say: parameter and byte totals, dtypes, and an architecture
signature (a hash of sorted tensor names and shapes) that groups models which can be
compared tensor by tensor.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lineage.weights.card import CardData, read_card
from lineage.weights.header import TensorInfo
from lineage.weights.untrusted import (
    MAX_JSON_BYTES,
    Fields,
    load_json_object,
    read_json_object,
)

MAX_CONFIG_BYTES = MAX_JSON_BYTES
MAX_ADAPTER_RANK = 1 << 20  # far above any real LoRA rank; fits the catalog's int32


@dataclass(frozen=True)
class ModelMetadata:
    """What a model declares, every field already checked to be of its type."""

    kind: str
    config: dict = field(default_factory=dict)
    adapter_config: dict = field(default_factory=dict)
    card: CardData = field(default_factory=CardData)
    n_params: int = 0
    n_bytes: int = 0
    dtypes: tuple[str, ...] = ()
    arch_signature: str = ""
    model_type: str | None = None
    architectures: tuple[str, ...] = ()
    adapter_base: str | None = None
    adapter_rank: int | None = None

    @property
    def base_models(self) -> tuple[str, ...]:
        """Declared parents: the card's base_model, else the adapter's base model."""
        if self.card.base_models:
            return self.card.base_models
        return (self.adapter_base,) if self.adapter_base else ()


def architecture_signature(infos: Iterable[TensorInfo]) -> str:
    """Stable hash of sorted (name, shape): equal for models comparable tensor by tensor."""
    items = sorted((t.name, list(t.shape)) for t in infos)
    return hashlib.sha256(json.dumps(items, separators=(",", ":")).encode()).hexdigest()[:16]


def read_metadata(
    kind: str, root: Path, infos: list[TensorInfo], held: Mapping[str, bytes] | None = None
) -> ModelMetadata:
    """The model's declared metadata; MalformedMetadataError (naming the file and the
    field) when config.json, model_index.json or adapter_config.json is unreadable or
    holds a field of the wrong type. The card never fails the model (see card.py).
    `held`: the model's files in memory by name (see Layout.held), read instead of
    `root`'s, with the same bounds."""
    config_path = root / "config.json"
    config = _json_object(config_path, held)
    if config is None:
        config_path = root / "model_index.json"
        config = _json_object(config_path, held) or {}
    adapter_path = root / "adapter_config.json"
    adapter = _json_object(adapter_path, held) or {}
    typed = _declared(kind, Fields(config, str(config_path)), Fields(adapter, str(adapter_path)))
    return ModelMetadata(
        kind=kind,
        config=config,
        adapter_config=adapter,
        card=read_card(root, held),
        n_params=sum(t.numel for t in infos),
        n_bytes=sum(t.nbytes for t in infos),
        dtypes=tuple(sorted({t.dtype for t in infos})),
        arch_signature=architecture_signature(infos),
        **typed,
    )


def _json_object(path: Path, held: Mapping[str, bytes] | None) -> dict | None:
    """read_json_object of `path`, or of its bytes in `held` (as many as it reads)."""
    if held is None:
        return read_json_object(path, max_bytes=MAX_CONFIG_BYTES)
    data = held.get(path.name)
    if data is None:
        return None
    return load_json_object(data[: MAX_CONFIG_BYTES + 1], str(path), max_bytes=MAX_CONFIG_BYTES)


def _declared(kind: str, config: Fields, adapter: Fields) -> dict:
    """The typed fields of config.json / model_index.json and adapter_config.json."""
    model_type = config.text("model_type") or config.text("_class_name")
    peft_type = adapter.text("peft_type")
    if kind == "peft-adapter" and not model_type and peft_type:
        model_type = peft_type.lower()
    return {
        "model_type": model_type,
        "architectures": config.texts("architectures"),
        "adapter_base": adapter.text("base_model_name_or_path") or None,
        "adapter_rank": adapter.integer("r", 1, MAX_ADAPTER_RANK),
    }
