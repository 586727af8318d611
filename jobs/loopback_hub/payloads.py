"""The JSON bodies of the Hub API, built from a `Repo`.

Field names follow what huggingface_hub's `ModelInfo`, `RepoFile` and `RepoFolder`
read (camelCase, `rfilename`, `blobId`, `lfs.pointerSize`...).
"""

from __future__ import annotations

import hashlib

from jobs.loopback_hub.repo import Repo

# What a plain `list_models()` returns per model on the Hub (no siblings, no sha).
LIST_FIELDS = (
    "_id",
    "id",
    "modelId",
    "author",
    "likes",
    "downloads",
    "trendingScore",
    "private",
    "tags",
    "pipeline_tag",
    "library_name",
    "createdAt",
)
# `full=True` adds these.
FULL_FIELDS = ("sha", "lastModified", "siblings", "gated", "disabled", "usedStorage")


def sibling(repo: Repo, path: str, blobs: bool) -> dict:
    entry: dict = {"rfilename": path}
    if blobs:
        blob = repo.blob(path)
        entry["size"] = repo.files[path].size
        entry["blobId"] = blob.git_oid
        if blob.sha256 is not None:
            entry["lfs"] = {
                "size": repo.files[path].size,
                "sha256": blob.sha256,
                "pointerSize": blob.pointer_size,
            }
    return entry


def _config_summary(repo: Repo) -> dict | None:
    """The Hub shows a few config keys, not the whole file."""
    if repo.config is None:
        return None
    keys = ("architectures", "model_type", "_name_or_path", "torch_dtype")
    return {k: repo.config[k] for k in keys if k in repo.config}


# Every property `model_info` can return, computed only when asked for: a plain
# listing must not hash every file of every repo (sha, blobs) or parse headers.
_PROPERTIES = {
    "_id": lambda r, blobs: hashlib.sha1(r.repo_id.encode()).hexdigest()[:24],
    "id": lambda r, blobs: r.repo_id,
    "modelId": lambda r, blobs: r.repo_id,
    "author": lambda r, blobs: r.org,
    "sha": lambda r, blobs: r.sha,
    "lastModified": lambda r, blobs: r.last_modified,
    "createdAt": lambda r, blobs: r.created_at,
    "private": lambda r, blobs: False,
    "gated": lambda r, blobs: False,
    "disabled": lambda r, blobs: False,
    "downloads": lambda r, blobs: 0,
    "likes": lambda r, blobs: 0,
    "trendingScore": lambda r, blobs: 0,
    "tags": lambda r, blobs: r.tags,
    "pipeline_tag": lambda r, blobs: r.card.get("pipeline_tag"),
    "library_name": lambda r, blobs: r.library_name,
    "cardData": lambda r, blobs: r.card or None,
    "siblings": lambda r, blobs: [sibling(r, p, blobs) for p in r.files],
    "usedStorage": lambda r, blobs: sum(f.size for f in r.files.values()),
    "config": lambda r, blobs: _config_summary(r),
    "safetensors": lambda r, blobs: r.safetensors(),
}


def properties(repo: Repo, names: list[str] | tuple[str, ...], blobs: bool = False) -> dict:
    """The named properties (unknown names ignored); None-valued ones are left out."""
    out = {}
    for name in dict.fromkeys(names):
        if name in _PROPERTIES and (value := _PROPERTIES[name](repo, blobs)) is not None:
            out[name] = value
    return out


def model_info(repo: Repo, blobs: bool = False, expand: list[str] | None = None) -> dict:
    """`GET /api/models/{id}`: every property, or `_id`, `id` and those in `expand`."""
    names = ["_id", "id", *expand] if expand else list(_PROPERTIES)
    return properties(repo, names, blobs)


def list_entry(
    repo: Repo, *, full: bool, card_data: bool, config: bool, expand: list[str] | None
) -> dict:
    """One item of `GET /api/models`, shaped by the query's full/cardData/config/expand."""
    if expand:
        return properties(repo, ["_id", "id", *expand])
    names = list(LIST_FIELDS)
    if full:
        names += FULL_FIELDS
    if card_data:
        names.append("cardData")
    if config:
        names.append("config")
    return properties(repo, names)


def tree_entries(repo: Repo, prefix: str, recursive: bool) -> list[dict] | None:
    """`GET /api/models/{id}/tree/{rev}/{prefix}`; None when `prefix` is not a folder."""
    base = f"{prefix}/" if prefix else ""
    files = [p for p in repo.files if p.startswith(base)]
    if prefix and not files:
        return None
    out: list[dict] = []
    folders: set[str] = set()
    for path in files:
        rest = path[len(base) :]
        if "/" in rest and not recursive:
            folders.add(base + rest.split("/", 1)[0])
            continue
        if recursive:  # every ancestor folder of the file is listed too
            parts = rest.split("/")[:-1]
            folders.update(base + "/".join(parts[: i + 1]) for i in range(len(parts)))
        out.append(file_entry(repo, path))
    out += [folder_entry(repo, f) for f in sorted(folders)]
    return sorted(out, key=lambda e: e["path"])


def file_entry(repo: Repo, path: str) -> dict:
    blob = repo.blob(path)
    entry: dict = {"type": "file", "path": path, "size": repo.files[path].size, "oid": blob.git_oid}
    if blob.sha256 is not None:
        entry["lfs"] = {
            "oid": blob.sha256,
            "size": repo.files[path].size,
            "pointerSize": blob.pointer_size,
        }
    return entry


def folder_entry(repo: Repo, path: str) -> dict:
    # A tree id only needs to be stable and change with the folder's content.
    digest = hashlib.sha1(path.encode())
    for p in repo.files:
        if p.startswith(path + "/"):
            digest.update(f"{p}\x00{repo.blob(p).git_oid}\n".encode())
    return {"type": "directory", "path": path, "oid": digest.hexdigest(), "size": 0}


def refs(repo: Repo) -> dict:
    main = {"name": "main", "ref": "refs/heads/main", "targetCommit": repo.sha}
    return {"branches": [main], "converts": [], "tags": [], "pullRequests": []}
