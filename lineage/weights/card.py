"""Model card front matter: the YAML block between `---` lines at the top of README.md.

Cards come from strangers: parsed with yaml.safe_load only, size-limited, and a broken
card is reported as `card_error` rather than failing the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

MAX_CARD_BYTES = 1024 * 1024


@dataclass(frozen=True)
class CardData:
    base_models: tuple[str, ...] = ()
    relation: str | None = None
    license: str | None = None
    tags: tuple[str, ...] = ()
    raw: dict = field(default_factory=dict)
    error: str | None = None


def parse_front_matter(text: str) -> dict:
    """The YAML front matter of a card as a dict ({} when there is none)."""
    if not text.startswith("---"):
        return {}
    lines = text.splitlines()
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise ValueError("front matter opened with '---' is never closed") from None
    doc = yaml.safe_load("\n".join(lines[1:end])) or {}
    if not isinstance(doc, dict):
        raise ValueError(f"front matter is a {type(doc).__name__}, expected a mapping")
    return doc


def card_from_front_matter(doc: dict) -> CardData:
    base = doc.get("base_model")
    bases = [base] if isinstance(base, str) else list(base or [])
    tags = doc.get("tags") or []
    return CardData(
        # PEFT writes `base_model: ''` when it does not know; an empty id is no claim.
        base_models=tuple(str(b).strip() for b in bases if isinstance(b, str) and b.strip()),
        relation=_str_or_none(doc.get("base_model_relation")),
        license=_str_or_none(doc.get("license")),
        tags=tuple(str(t) for t in (tags if isinstance(tags, list) else [tags])),
        raw=doc,
    )


def read_card(folder: str | Path) -> CardData:
    """Parse `folder/README.md` if present; never raises for a malformed card."""
    path = Path(folder) / "README.md"
    if not path.is_file():
        return CardData()
    with open(path, "rb") as fh:
        text = fh.read(MAX_CARD_BYTES).decode("utf-8", errors="replace")
    try:
        return card_from_front_matter(parse_front_matter(text))
    except (ValueError, yaml.YAMLError) as err:
        return CardData(error=f"{path.name}: {err}".splitlines()[0])


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)
