"""Model card front matter: the YAML block between `---` lines at the top of README.md.

Cards come from strangers: read through `untrusted` (size-limited, depth- and
alias-budgeted YAML with safe tags only, every field type-checked). A card's problems
are never fatal: a card that cannot be read, or a field of the wrong type, is recorded
as `card_error` and the model is indexed without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lineage.errors import MalformedMetadataError
from lineage.weights.untrusted import MAX_CARD_BYTES, Fields, load_yaml, read_bounded

__all__ = ["MAX_CARD_BYTES", "CardData", "card_from_front_matter", "parse_front_matter"]


@dataclass(frozen=True)
class CardData:
    base_models: tuple[str, ...] = ()
    relation: str | None = None
    license: str | None = None
    tags: tuple[str, ...] = ()
    raw: dict = field(default_factory=dict)
    error: str | None = None


def parse_front_matter(text: str, what: str = "card front matter") -> dict:
    """The YAML front matter of a card as a dict ({} when there is none); raises
    MalformedMetadataError when it is unreadable or over its budgets."""
    if not text.startswith("---"):
        return {}
    lines = text.splitlines()
    end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
    if end is None:
        raise MalformedMetadataError(what, "opens with '---' and is never closed", "")
    doc = load_yaml("\n".join(lines[1:end]), what) or {}
    if not isinstance(doc, dict):
        raise MalformedMetadataError(what, f"is a {type(doc).__name__}, expected a mapping", "")
    return doc


def card_from_front_matter(doc: dict, what: str = "README.md") -> CardData:
    """Typed card fields; a field of the wrong type is dropped and noted in `error`."""
    fields = Fields(doc, what, strict=False)
    # PEFT writes `base_model: ''` when it does not know; an empty id is no claim.
    bases = fields.texts("base_model", one_or_many=True)
    return CardData(
        base_models=tuple(b.strip() for b in bases if b.strip()),
        relation=fields.text("base_model_relation"),
        license=fields.text("license"),
        tags=fields.texts("tags", one_or_many=True),
        raw=doc,
        error="; ".join(fields.notes) or None,
    )


def read_card(folder: str | Path, held: Mapping[str, bytes] | None = None) -> CardData:
    """Parse `folder/README.md` if present (its bytes in `held` when given: a model held
    in memory); never raises for a malformed card."""
    path = Path(folder) / "README.md"
    if held is None:
        data = read_bounded(path, MAX_CARD_BYTES)
    else:
        data = held.get(path.name)
    if data is None:
        return CardData()
    # Only the front matter matters: a long card body is cut, not refused.
    text = data[:MAX_CARD_BYTES].decode("utf-8", errors="replace")
    try:
        return card_from_front_matter(parse_front_matter(text, path.name), path.name)
    except MalformedMetadataError as err:
        return CardData(error=str(err).splitlines()[0])
