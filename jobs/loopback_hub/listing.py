"""`GET /api/models`: filtering, sorting and cursor pagination over the repo folder.

Pagination follows the Hub: each page carries a `Link: <url>; rel="next"` header whose
URL repeats the query with a `cursor`; the client follows it until there is none. The
cursor here is just the offset into the sorted, filtered list, which is stable as long
as the folder does not change between pages (good enough for tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from jobs.loopback_hub import payloads
from jobs.loopback_hub.blobs import BlobCache
from jobs.loopback_hub.repo import Repo, list_repo_ids, open_repo

# Sort keys the client may send, and how to read each from a repo (sorted descending).
_SORT_KEYS = {
    "createdAt": lambda r: r.created_at,
    "lastModified": lambda r: r.last_modified,
    "id": lambda r: r.repo_id,
}


def _flag(query: dict[str, list[str]], key: str) -> bool:
    return query.get(key, ["false"])[-1].lower() in ("1", "true", "yes")


@dataclass
class Page:
    items: list[dict]
    next_query: dict[str, list[str]] | None  # the query of the next page, if any


def _matches(repo: Repo, query: dict[str, list[str]]) -> bool:
    if (author := query.get("author")) and repo.org != author[-1]:
        return False
    if (search := query.get("search")) and search[-1].lower() not in repo.repo_id.lower():
        return False
    if (pipeline := query.get("pipeline_tag")) and repo.card.get("pipeline_tag") != pipeline[-1]:
        return False
    tags = set(repo.tags)
    # Each `filter` value must hold; one value may itself be a comma-separated AND list.
    wanted = [t for value in query.get("filter", []) for t in value.split(",") if t]
    return all(t in tags or t == repo.repo_id for t in wanted)


def _matching(root: Path, cache: BlobCache, org: str, name: str, query) -> Repo | None:
    """The repo if it matches; None if not, or if reading it fails in any way: one
    broken repo is left out of listings, never the cause of a failed listing."""
    try:
        repo = open_repo(root, org, name, cache)
        return repo if repo is not None and _matches(repo, query) else None
    except Exception:  # noqa: BLE001 - isolation: its own endpoints report the problem
        return None


def select(root: Path, cache: BlobCache, query: dict[str, list[str]]) -> list[Repo]:
    """The repos matching the query, in the order the query asks for."""
    repos = [
        r
        for org, name in list_repo_ids(root)
        if (r := _matching(root, cache, org, name, query)) is not None
    ]
    sort = query.get("sort", [""])[-1]
    if sort in _SORT_KEYS:
        descending = query.get("direction", ["-1"])[-1] != "1"
        repos.sort(key=_SORT_KEYS[sort], reverse=descending)
    return repos


def page(root: Path, cache: BlobCache, query: dict[str, list[str]], page_size: int) -> Page:
    repos = select(root, cache, query)
    try:
        start = max(0, int(query.get("cursor", ["0"])[-1]))
        limit = int(query["limit"][-1]) if "limit" in query else page_size
    except ValueError:
        start, limit = 0, page_size
    size = max(1, min(limit, page_size))
    chunk = repos[start : start + size]
    items = [item for r in chunk if (item := _entry(r, query)) is not None]
    more = start + size < len(repos)
    next_query = {**query, "cursor": [str(start + size)]} if more else None
    return Page(items, next_query)


def _entry(repo: Repo, query: dict[str, list[str]]) -> dict | None:
    """One listing item; a repo whose item cannot be built is left out (isolated)."""
    try:
        return payloads.list_entry(
            repo,
            full=_flag(query, "full"),
            card_data=_flag(query, "cardData"),
            config=_flag(query, "config"),
            expand=query.get("expand"),
        )
    except Exception:  # noqa: BLE001 - a broken repo must not fail everyone's listing
        return None


def encode_query(query: dict[str, list[str]]) -> str:
    return urlencode([(k, v) for k, values in query.items() for v in values])
