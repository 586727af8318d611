"""Seeds, and the breadth-first walk of model families through documented edges.

A seed is a model id (`org/name`), `author:NAME`, `search:TERM` or `everything`. From
each model the walk goes up (the parents its card names, read from its
`base_model:RELATION:ID` tags) and down (the children that name it, found with the
listing filters `base_model:{finetune,adapter,merge,quantized}:ID`), level by level, so
one seed finds its whole documented family and every edge inside it.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from huggingface_hub.hf_api import ModelInfo

from lineage.errors import HubError, LineageError
from lineage.hub.client import HubClient
from lineage.hub.ids import is_repo_id, validate_repo_id
from lineage.hub.remote import RELATIONS, CardEdge, RemoteModel, remote_model

EVERYTHING = ("everything", "*")
LIST_EXPAND = ["sha", "siblings", "tags", "createdAt", "lastModified"]


@dataclass(frozen=True)
class Seed:
    kind: str  # model | author | search | everything
    value: str = ""


@dataclass(frozen=True)
class Found:
    """One walk event: a model (with its card edges), or a model that could not be read."""

    model_id: str
    remote: RemoteModel | None = None
    error: str | None = None


def parse_seed(text: str) -> Seed:
    text = text.strip()
    if text in EVERYTHING:
        return Seed("everything")
    for kind in ("author", "search", "model"):
        if text.startswith(f"{kind}:") and text[len(kind) + 1 :]:
            value = text[len(kind) + 1 :]
            return Seed(kind, validate_repo_id(value) if kind == "model" else value)
    if is_repo_id(text):
        return Seed("model", text)
    raise HubError(
        f"seed {text[:200]!r}",
        "is not a model id, author:NAME, search:TERM or everything",
        "Example: --seeds org/model author:org everything",
    )


def _listed(client: HubClient, seed: Seed, since: datetime | None) -> Iterator[RemoteModel]:
    """Models a listing seed names, newest change first, stopping at `since`."""
    params: dict[str, object] = {"sort": "lastModified", "direction": -1, "expand": LIST_EXPAND}
    if seed.kind in ("author", "search"):
        params[seed.kind] = seed.value
    for item in client.list_models(**params):
        try:
            remote = remote_model(ModelInfo(**{**item, "siblings": item.get("siblings")}))
        except (LineageError, TypeError, ValueError, AttributeError, KeyError, IndexError):
            continue  # a hostile id, sha or card in a listing is skipped, not fatal
        if since is not None and remote.last_modified and remote.last_modified < since:
            return  # sorted by lastModified: everything after this is older
        yield remote


def children(client: HubClient, model_id: str) -> list[str]:
    """Models whose card names `model_id` as a base, under any relation."""
    found: list[str] = []
    for relation in RELATIONS:
        for item in client.list_models(filter=f"base_model:{relation}:{model_id}"):
            if is_repo_id(item["id"]) and item["id"] not in found:
                found.append(item["id"])
    return found


def walk(
    client: HubClient,
    seeds: list[Seed],
    *,
    family: bool = True,
    since: datetime | None = None,
    max_models: int | None = None,
    threads: int = 8,
) -> Iterator[Found]:
    """Yield every model reachable from `seeds`, each once, breadth-first.

    Listing seeds yield their models directly (sizes learnt later from range reads);
    with `family`, each model's parents and children are walked too.
    """
    seen: set[str] = set()
    frontier: list[str] = []
    budget = max_models if max_models is not None else float("inf")
    for seed in seeds:
        if seed.kind == "model":
            frontier.append(seed.value)
            continue
        for remote in _listed(client, seed, since):
            if len(seen) >= budget:
                return
            if remote.model_id not in seen:
                seen.add(remote.model_id)
                yield Found(remote.model_id, remote)
                if family and seed.kind != "everything":
                    frontier += _neighbours_up(remote)
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="lineage-walk") as pool:
        while frontier and len(seen) < budget:
            level = [m for m in dict.fromkeys(frontier) if m not in seen]
            level = level[: int(min(len(level), budget - len(seen)))]
            seen.update(level)
            frontier = []
            for found, nexts in pool.map(lambda m: _expand(client, m, family), level):
                yield found
                frontier += [m for m in nexts if m not in seen]


def _neighbours_up(remote: RemoteModel) -> list[str]:
    return [edge.parent for edge in remote.card_edges]


def _expand(client: HubClient, model_id: str, family: bool) -> tuple[Found, list[str]]:
    try:
        remote = client.model_info(model_id)
    except LineageError as err:
        return Found(model_id, error=str(err)), []
    nexts = _neighbours_up(remote) if family else []
    if family:
        try:
            nexts += children(client, model_id)
        except LineageError as err:
            return Found(model_id, remote, error=f"listing its children failed: {err}"), nexts
    return Found(model_id, remote), nexts


__all__ = ["CardEdge", "Found", "Seed", "children", "parse_seed", "walk"]
