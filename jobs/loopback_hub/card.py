"""Model cards: the YAML front matter of README.md, and the tags the Hub derives from it.

The Hub turns `base_model` + `base_model_relation` into tags such as
`base_model:finetune:org/name`, which is how `list_models(filter=...)` finds children.
When the relation is absent the Hub infers it from the files; we mirror the rules it
documents: adapter files -> adapter, GGUF files -> quantized, several bases -> merge,
else finetune.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from lineage.errors import MalformedMetadataError
from lineage.weights.card import parse_front_matter

RELATIONS = ("adapter", "merge", "quantized", "finetune")


def read_front_matter(text: str) -> dict:
    """The card's YAML metadata; {} when absent or unreadable (the Hub shows such cards
    too). Read by lineage's safe reader: an alias bomb or a 100 000-level document is
    refused in linear time, and the result is plain JSON (dates become strings), so
    whatever a card holds, every endpoint can serialise it."""
    try:
        return card_as_json(parse_front_matter(text.lstrip("\ufeff")))
    except MalformedMetadataError:
        return {}


def card_as_json(card: dict) -> dict:
    """`card` with every value JSON can carry (YAML dates, sets... become strings)."""
    return json.loads(json.dumps(card, default=str))


def base_models(card: dict) -> list[str]:
    """`base_model` as a list of repo ids, whether the card gives a string or a list."""
    value = card.get("base_model")
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str) and v.strip()]
    return []


def relation(card: dict, filenames: Iterable[str]) -> str | None:
    """The declared relation if valid, else the one the Hub would infer."""
    bases = base_models(card)
    if not bases:
        return None
    declared = card.get("base_model_relation")
    if isinstance(declared, str) and declared in RELATIONS:
        return declared
    names = {name.rsplit("/", 1)[-1] for name in filenames}
    if "adapter_config.json" in names:
        return "adapter"
    if any(name.endswith(".gguf") for name in names):
        return "quantized"
    if len(bases) > 1:
        return "merge"
    return "finetune"


def card_tags(card: dict) -> list[str]:
    """The card's own `tags`, plus `license:...`, as the Hub lists them."""
    tags = card.get("tags")
    out = [tags] if isinstance(tags, str) else [t for t in tags or [] if isinstance(t, str)]
    license_ = card.get("license")
    if isinstance(license_, str):
        out.append(f"license:{license_}")
    return out


def lineage_tags(card: dict, filenames: Iterable[str]) -> list[str]:
    """`base_model:ID` and `base_model:RELATION:ID` for every declared base."""
    rel = relation(card, filenames)
    out: list[str] = []
    for base in base_models(card):
        out += [f"base_model:{base}", f"base_model:{rel}:{base}"]
    return out
