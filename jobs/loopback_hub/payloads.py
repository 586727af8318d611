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


def model_info(repo: Repo, blobs: bool = False) -> dict:
    """Everything `model_info` can return; `list_models` selects from it."""
    config = repo.config
    info = {
        "_id": repo.sha[:24],
        "id": repo.repo_id,
        "modelId": repo.repo_id,
        "author": repo.org,
        "sha": repo.sha,
        "lastModified": repo.last_modified,
        "createdAt": repo.created_at,
        "private": False,
        "gated": False,
        "disabled": False,
        "downloads": 0,
        "likes": 0,
        "trendingScore": 0,
        "tags": repo.tags,
        "pipeline_tag": repo.card.get("pipeline_tag"),
        "library_name": repo.library_name,
        "cardData": repo.card or None,
        "siblings": [sibling(repo, p, blobs) for p in repo.files],
        "usedStorage": sum(f.size for f in repo.files.values()),
        "config": _config_summary(config) if config is not None else None,
    }
    safetensors = repo.safetensors()
    if safetensors is not None:
        info["safetensors"] = safetensors
    return info


def _config_summary(config: dict) -> dict:
    """The Hub shows a few config keys, not the whole file."""
    keys = ("architectures", "model_type", "_name_or_path", "torch_dtype")
    return {k: config[k] for k in keys if k in config}


def select(info: dict, expand: list[str]) -> dict:
    """`expand=[...]` returns exactly the properties asked for, plus the id."""
    return {"_id": info["_id"], "id": info["id"], **{k: info[k] for k in expand if k in info}}


def list_entry(
    repo: Repo, *, full: bool, card_data: bool, config: bool, expand: list[str] | None
) -> dict:
    """One item of `GET /api/models`, shaped by the query's full/cardData/config/expand."""
    info = model_info(repo, blobs=False)
    if expand:
        return select(info, expand)
    fields = list(LIST_FIELDS)
    if full:
        fields += FULL_FIELDS
    if card_data:
        fields.append("cardData")
    if config:
        fields.append("config")
    return {k: info[k] for k in fields if info.get(k) is not None or k in LIST_FIELDS}


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
