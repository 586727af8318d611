"""What the Hub says about one model repo, checked and reduced to plain values.

`RemoteModel` is built from `HfApi.model_info(..., files_metadata=True)`; file names
that are not safe relative paths are dropped here (they can never be fetched), and the
documented lineage is read from the Hub's `base_model:RELATION:ID` tags, which the Hub
derives from the card's `base_model` / `base_model_relation`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from lineage.errors import HubError
from lineage.hub.ids import is_repo_id, is_safe_relpath, validate_repo_id

RELATIONS = ("finetune", "adapter", "merge", "quantized")
SHA = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class CardEdge:
    """A parent -> child edge the child's card documents."""

    parent: str
    child: str
    relation: str


@dataclass(frozen=True)
class RemoteModel:
    model_id: str
    sha: str
    files: dict[str, int | None] = field(default_factory=dict)  # path -> size (bytes)
    tags: tuple[str, ...] = ()
    created_at: datetime | None = None
    last_modified: datetime | None = None

    @property
    def card_edges(self) -> list[CardEdge]:
        return edges_from_tags(self.model_id, self.tags)


def edges_from_tags(child: str, tags: tuple[str, ...] | list[str]) -> list[CardEdge]:
    """Edges from `base_model:RELATION:PARENT` tags; malformed ones are ignored."""
    out: dict[tuple[str, str], CardEdge] = {}
    for tag in tags:
        parts = tag.split(":", 2) if isinstance(tag, str) else []
        if len(parts) == 3 and parts[0] == "base_model" and parts[1] in RELATIONS:
            parent = parts[2]
            if is_repo_id(parent) and parent != child:
                out[(parent, parts[1])] = CardEdge(parent, child, parts[1])
    return list(out.values())


def remote_model(info: object) -> RemoteModel:
    """A RemoteModel from a huggingface_hub ModelInfo; HubError if its id or sha is bad."""
    model_id = validate_repo_id(getattr(info, "id", None))
    sha = getattr(info, "sha", None)
    if not isinstance(sha, str) or not SHA.match(sha):
        raise HubError(f"model {model_id}", f"has no valid commit sha ({str(sha)[:60]!r})", "")
    files: dict[str, int | None] = {}
    for sibling in getattr(info, "siblings", None) or []:
        name, size = getattr(sibling, "rfilename", None), getattr(sibling, "size", None)
        if is_safe_relpath(name):
            files[name] = size if isinstance(size, int) and size >= 0 else None
    tags = tuple(t for t in (getattr(info, "tags", None) or []) if isinstance(t, str))
    return RemoteModel(
        model_id=model_id,
        sha=sha,
        files=files,
        tags=tags,
        created_at=getattr(info, "created_at", None),
        last_modified=getattr(info, "last_modified", None),
    )
